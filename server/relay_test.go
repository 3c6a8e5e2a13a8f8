package server_test

import (
	"net"
	"testing"
	"time"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/transport"
)

// TestNodeRelayListens: a node of a cluster (DTLS.Node.ID set) listens on NodeRelayAddr and
// serves the inter-node relay there: a datagram that is no envelope is counted as malformed.
func TestNodeRelayListens(t *testing.T) {
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr().String()
	probe.Close() // the port is free again for the node to take
	h := startHarness(t, func(c *server.Config) {
		c.DTLS.ConnectionID = true
		c.DTLS.Node = transport.NodeConfig{ID: 1, Relays: transport.StaticRelays{}, Key: make([]byte, 32)}
		c.NodeRelayAddr = addr
	})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	malformed := map[string]string{"reason": "malformed"}
	deadline := time.Now().Add(30 * time.Second)
	for h.counter(t, "lwota_cluster_forwarded_records_dropped_total", malformed) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not answer on NodeRelayAddr")
		}
		_, _ = c.Write([]byte("not an envelope"))
		time.Sleep(20 * time.Millisecond)
	}
}
