package main

import (
	"io"
	"net/netip"
	"slices"
	"testing"
)

// TestLimitFlags: the limit flags and their LWOTA_* twins reach the core's configuration; 0
// turns a rate limit off.
func TestLimitFlags(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		name          string
		args          []string
		env           map[string]string
		sourceRate    float64
		exempt        []netip.Prefix
		handshakeRate float64
		maxSessions   int
		maxHandshakes int
		wantErr       bool
	}{
		{name: "defaults", sourceRate: 2000, exempt: loopback, handshakeRate: 10, maxSessions: 100000, maxHandshakes: 1024},
		{name: "flags", args: []string{"--coap-source-rate", "50", "--coap-source-rate-exempt", "10.1.0.0/16, 192.0.2.7", "--dtls-handshake-rate", "2.5",
			"--dtls-max-sessions", "500", "--dtls-max-handshakes", "64"},
			sourceRate: 50, exempt: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32")},
			handshakeRate: 2.5, maxSessions: 500, maxHandshakes: 64},
		{name: "off", args: []string{"--coap-source-rate", "0", "--dtls-handshake-rate", "0", "--coap-source-rate-exempt="},
			sourceRate: -1, exempt: []netip.Prefix{}, handshakeRate: -1, maxSessions: 100000, maxHandshakes: 1024},
		{name: "environment", env: map[string]string{"LWOTA_COAP_SOURCE_RATE": "7", "LWOTA_COAP_SOURCE_RATE_EXEMPT": "none"},
			sourceRate: 7, exempt: []netip.Prefix{}, handshakeRate: 10, maxSessions: 100000, maxHandshakes: 1024},
		{name: "bad prefix", args: []string{"--coap-source-rate-exempt", "10.0.0.0/33"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServeFlags(tc.args, io.Discard, func(k string) string { return tc.env[k] })
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tr, d := c.Core.Transport, c.Core.DTLS
			if tr.SourceRate != tc.sourceRate || !slices.Equal(tr.SourceExempt, tc.exempt) || tr.SourceExempt == nil ||
				d.HandshakeRate != tc.handshakeRate || d.MaxSessions != tc.maxSessions || d.MaxHandshakes != tc.maxHandshakes {
				t.Fatalf("source rate %v exempt %v, handshake rate %v, sessions %d, handshakes %d",
					tr.SourceRate, tr.SourceExempt, d.HandshakeRate, d.MaxSessions, d.MaxHandshakes)
			}
		})
	}
}
