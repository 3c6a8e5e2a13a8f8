package main

import (
	"io"
	"strings"
	"testing"
)

// TestNodeRelayFlag: --node-relay-addr reaches the core's configuration with the relay key
// derived from the cluster key (the same on every node), and is refused without what the relay
// needs.
func TestNodeRelayFlag(t *testing.T) {
	cluster := []string{"--cluster", "--database", "postgres://x/y", "--cluster-key", testClusterKey}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"cluster", append(cluster, "--node-relay-addr", "10.0.0.5:5690"), ""},
		{"no cluster", []string{"--node-relay-addr", "10.0.0.5:5690"}, "needs --cluster"},
		{"no connection ids", append(cluster, "--node-relay-addr", "10.0.0.5:5690", "--dtls-connection-id=false"), "needs --dtls-connection-id"},
		{"host name", append(cluster, "--node-relay-addr", "node-a:5690"), "want IP:port"},
		{"any address", append(cluster, "--node-relay-addr", "0.0.0.0:5690"), "the other nodes reach"},
		{"port 0", append(cluster, "--node-relay-addr", "10.0.0.5:0"), "the other nodes reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServeFlags(tc.args, io.Discard, func(string) string { return "" })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Core.NodeRelayAddr != "10.0.0.5:5690" || len(c.Core.DTLS.Node.Key) != 32 {
				t.Fatalf("relay %q, key of %d bytes", c.Core.NodeRelayAddr, len(c.Core.DTLS.Node.Key))
			}
			again, _ := parseServeFlags(tc.args, io.Discard, func(string) string { return "" })
			if string(again.Core.DTLS.Node.Key) != string(c.Core.DTLS.Node.Key) {
				t.Fatal("the relay key is not derived from the cluster key alone")
			}
		})
	}
}
