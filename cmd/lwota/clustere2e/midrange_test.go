package clustere2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/pgtest"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// TestServeGivesNodesMessageIDRanges checks the serve wiring of per-node message-id ranges: a
// node started with --cluster asks its devices with message ids from the range of its node id
// (one of 16 slices of 4,096, transport.Config.NodeID), so that a node taking a device over behind
// the balancer does not start among the previous owner's ids. Each node reads four devices, each
// from a new address (a new sequence, a new start): without the wiring a start is random, and all
// eight land in their node's slice about once in 2^32 runs.
func TestServeGivesNodesMessageIDRanges(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := newNode(t, "node-a"), newNode(t, "node-b")
	for _, nd := range []*node{a, b} {
		nd.start(t, dsn)
	}
	nodes := clusterNodes(t, a)
	if len(nodes) != 2 {
		t.Fatalf("GET /api/v1/cluster/nodes: %+v, want 2 nodes", nodes)
	}
	ids := map[string]uint16{}
	for _, n := range nodes {
		ids[n.Name] = n.ID
	}
	for _, nd := range []*node{a, b} {
		base := (int(ids[nd.name]) - 1) % 16 * 4096
		for i := range 4 {
			ep := fmt.Sprintf("mid-%s-%d", nd.name, i)
			mid := readThroughAPI(t, nd, ep)
			if int(mid) < base || int(mid) >= base+4096 {
				t.Errorf("%s (node id %d) asked %s with message id %d, outside its range [%d, %d)",
					nd.name, ids[nd.name], ep, mid, base, base+4096)
			}
		}
	}
}

// readThroughAPI registers ep at nd from a new socket with bare datagrams, reads /3/0/0 through
// nd's API and returns the message id of the first request nd sent the device.
func readThroughAPI(t *testing.T, nd *node, ep string) uint16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	to, err := net.ResolveUDPAddr("udp", nd.coap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	reg := message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: 1, Token: []byte{1, 2, 3, 4},
		Payload: []byte("</3/0>,</5/0>")}
	reg.Options = reg.Options.Add(message.Option{ID: message.URIPath, Value: []byte("rd")})
	for _, q := range []string{"ep=" + ep, "lt=120", "lwm2m=1.1", "b=U"} {
		reg.Options = reg.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	reg.Options = reg.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{40}})
	send(t, conn, reg)

	first := -1
	done := make(chan int, 1)
	buf := make([]byte, 2048)
	for {
		select {
		case code := <-done:
			if code != 200 || first < 0 {
				t.Fatalf("%s: GET /3/0/0 through %s: %d (first request id %d)", ep, nd.name, code, first)
			}
			return uint16(first)
		case <-ctx.Done():
			t.Fatalf("%s: no answer through %s's API", ep, nd.name)
		default:
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			continue
		} else if err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatalf("%s: undecodable datagram: %v", ep, err)
		}
		switch {
		case m.Type == message.Acknowledgement && m.MessageID == 1:
			if m.Code != codes.Created {
				t.Fatalf("%s: Register answered %v", ep, m.Code)
			}
			go func() {
				done <- nd.api(t, "GET", "/api/v1/devices/"+url.PathEscape(ep)+"/objects/3/0/0", nil, nil)
			}()
		case m.Type == message.Confirmable:
			if first < 0 {
				first = int(m.MessageID)
			}
			ack := message.Message{Code: codes.Content, Type: message.Acknowledgement, MessageID: m.MessageID,
				Token: m.Token, Payload: []byte("lwota")}
			ack.Options = ack.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{0}})
			send(t, conn, ack)
		}
	}
}

func send(t *testing.T, conn *net.UDPConn, m message.Message) {
	t.Helper()
	raw := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(raw[:n]); err != nil {
		t.Fatal(err)
	}
}
