package main

import (
	"io"
	"testing"

	"github.com/lwota/lwota/server"
)

// TestRegistrationThroughputFlags: --coap-workers (LWOTA_COAP_WORKERS) sets the CoAP workers,
// 256 by default, and refuses fewer than one; a single node counts queued requests at start
// (dm.Config.SoleQueue), a cluster node does not.
func TestRegistrationThroughputFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		workers int
		sole    bool
		wantErr bool
	}{
		{name: "defaults", workers: server.DefaultWorkers, sole: true},
		{name: "flag", args: []string{"--coap-workers", "64"}, workers: 64, sole: true},
		{name: "environment", env: map[string]string{"LWOTA_COAP_WORKERS": "32"}, workers: 32, sole: true},
		{name: "none", args: []string{"--coap-workers", "0"}, wantErr: true},
		{name: "cluster", args: []string{"--cluster", "--database", "postgres://db/lwota", "--cluster-key", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
			workers: server.DefaultWorkers, sole: false},
	} {
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
			if c.Core.Transport.Workers != tc.workers || c.Core.DM.SoleQueue != tc.sole {
				t.Errorf("workers %d, sole queue %v; want %d, %v", c.Core.Transport.Workers, c.Core.DM.SoleQueue, tc.workers, tc.sole)
			}
		})
	}
}
