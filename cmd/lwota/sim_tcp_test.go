package main

import (
	"io"
	"testing"

	"github.com/lwota/lwota/server/lwm2mtest"
)

func TestSimTransportFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		ok        bool
		transport string
		binding   string
	}{
		{"default udp", nil, true, lwm2mtest.TransportUDP, "U"},
		{"tcp binds T", []string{"--transport", "tcp"}, true, lwm2mtest.TransportTCP, "T"},
		{"tcp keeps an explicit queue binding", []string{"--transport", "tcp", "--binding", "TQ"}, true, lwm2mtest.TransportTCP, "TQ"},
		{"tls without files", []string{"--transport", "tls"}, true, lwm2mtest.TransportTLS, "T"},
		{"unknown transport", []string{"--transport", "sms"}, false, "", ""},
		{"tls files without tls", []string{"--transport", "tcp", "--tls-ca", "ca.pem"}, false, "", ""},
		{"certificate without key", []string{"--transport", "tls", "--tls-cert", "c.pem"}, false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseSimFlags(tc.args, io.Discard, func(string) string { return "" })
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d := lwm2mtest.DeviceConfig{Binding: c.Binding}
			if err := c.simTransport.apply(&d); err != nil {
				t.Fatal(err)
			}
			if d.Transport != tc.transport || d.Binding != tc.binding || (tc.transport == lwm2mtest.TransportTLS) != (d.TLS != nil) {
				t.Fatalf("transport %q binding %q tls %v", d.Transport, d.Binding, d.TLS != nil)
			}
		})
	}
}
