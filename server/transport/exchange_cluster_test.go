package transport

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	coapclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// ownerBalancer stands in for nginx's UDP stream proxy in front of cluster nodes: the device talks
// to one front address, and its datagrams go to the node currently chosen (route); each node
// reaches the device through its own upstream socket (what nginx opens per session), and the
// device sees every node's datagrams come from the front address.
type ownerBalancer struct {
	front  *net.UDPConn
	ups    []*net.UDPConn // one per node
	nodes  []netip.AddrPort
	device atomic.Pointer[netip.AddrPort]
	route  atomic.Int32
	wg     sync.WaitGroup
	mu     sync.Mutex
	heard  [][]frame // per node: what the device sent it
}

func startOwnerBalancer(t *testing.T, nodes ...Addr) *ownerBalancer {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		return c
	}
	b := &ownerBalancer{front: listen(), heard: make([][]frame, len(nodes))}
	for _, n := range nodes {
		b.ups = append(b.ups, listen())
		b.nodes = append(b.nodes, n.AddrPort)
	}
	b.wg.Add(1 + len(b.ups))
	go func() { // device -> the routed node
		defer b.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := b.front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b.device.Store(&from)
			i := b.route.Load()
			if f, err := decode(append([]byte(nil), buf[:n]...)); err == nil {
				b.mu.Lock()
				b.heard[i] = append(b.heard[i], f)
				b.mu.Unlock()
			}
			_, _ = b.ups[i].WriteToUDPAddrPort(buf[:n], b.nodes[i])
		}
	}()
	for _, up := range b.ups {
		go func() { // a node -> the device, from the front address
			defer b.wg.Done()
			buf := make([]byte, 2048)
			for {
				n, _, err := up.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if d := b.device.Load(); d != nil {
					_, _ = b.front.WriteToUDPAddrPort(buf[:n], *d)
				}
			}
		}()
	}
	t.Cleanup(func() {
		b.front.Close()
		for _, up := range b.ups {
			up.Close()
		}
		b.wg.Wait()
	})
	return b
}

// answered reports whether the device sent node i an ACK under message id mid with token.
func (b *ownerBalancer) answered(i int, mid uint16, token string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.heard[i] {
		if f.typ == typeACK && f.mid == mid && f.msg != nil && string(f.msg.Token) == token {
			return true
		}
	}
	return false
}

// peer is the address node i sends to for the device: the balancer's upstream socket.
func (b *ownerBalancer) peer(i int) Addr {
	return Addr{Network: UDP, AddrPort: b.ups[i].LocalAddr().(*net.UDPAddr).AddrPort()}
}

// coapDevice is a CoAP client built on go-coap's UDP client, as the simulator's devices are:
// it keeps a duplicate cache keyed by message id for EXCHANGE_LIFETIME (RFC 7252 §4.5) and
// answers a repeated id with the cached response, token included, without running the handler.
type coapDevice struct {
	conn     *coapclient.Conn
	executes atomic.Int64
}

func dialCoAPDevice(t *testing.T, server string) *coapDevice {
	t.Helper()
	d := &coapDevice{}
	r := mux.NewRouter()
	_ = r.Handle("/3/0/0", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("lwota")))
	}))
	_ = r.Handle("/5/0/2", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		d.executes.Add(1)
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	// go-coap's default runner sleeps 4 s between rounds, past the test's goroutine check.
	c, err := udp.Dial(server, options.WithMux(r), options.WithPeriodicRunner(periodic.New(ctx.Done(), 10*time.Millisecond)))
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		<-c.Done()
		cancel()
	})
	d.conn = c
	return d
}

// lastMID is the message id e last sent to `to`.
func lastMID(e *Endpoint, to Addr) uint16 {
	e.mids.mu.Lock()
	defer e.mids.mu.Unlock()
	return e.mids.m[to.AddrPort].next - 1
}

// TestCluster_DeviceAnswersNewOwnerFromItsDuplicateCache: node A reads a resource of a device
// behind a balancer, the device moves to node B, and B's Execute happens to take the message
// id A's Read had (B's ids to the device start anywhere: nothing ties them to A's). The device
// sees both from the balancer's address, finds the id in its duplicate cache and answers the
// Execute with the Read's cached ACK (A's token) without running it. B must not take that as
// the Execute's answer; it sends the Execute again under a fresh message id, which the device
// runs, once.
func TestCluster_DeviceAnswersNewOwnerFromItsDuplicateCache(t *testing.T) {
	cfg := testConfig()
	nodeA, nodeB := startEndpoint(t, nil, cfg), startEndpoint(t, nil, cfg)
	lb := startOwnerBalancer(t, nodeA.addr, nodeB.addr)
	dev := dialCoAPDevice(t, lb.front.LocalAddr().String())
	ap := dev.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	lb.device.Store(&ap)

	ctx := context.Background()
	readToken := "A-read!!"
	resp, err := nodeA.Do(ctx, lb.peer(0), req(GET, "/3/0/0", []byte(readToken)...))
	if err != nil || resp.Code != Content || string(resp.Payload) != "lwota" {
		t.Fatalf("read through node A: %v %v", resp, err)
	}
	readMID := lastMID(nodeA.Endpoint, lb.peer(0))

	// The device now belongs to node B: nginx sends its datagrams there. B's first id to it
	// is the one A's Read had, a coincidence random starts allow (see TestMidTableNodeRanges).
	lb.route.Store(1)
	nodeB.mids.mu.Lock()
	nodeB.mids.m[lb.peer(1).AddrPort] = midState{next: readMID, last: nodeB.now()}
	nodeB.mids.mu.Unlock()

	resp, err = nodeB.Do(ctx, lb.peer(1), req(POST, "/5/0/2", []byte("B-exec!!")...))
	if !lb.answered(1, readMID, readToken) {
		t.Fatal("the device did not answer B's Execute with the cached ACK of A's Read: the premise is gone")
	}
	if err != nil {
		t.Fatalf("execute through node B: %v (the device ran it %d times)", err, dev.executes.Load())
	}
	if resp.Code != Changed || string(resp.Token) != "B-exec!!" || dev.executes.Load() != 1 {
		t.Fatalf("execute through node B answered %v (token %q); the device ran it %d times, want once",
			resp.Code, resp.Token, dev.executes.Load())
	}
	if n := nodeB.counter(t, "lwota_transport_stale_answers_total"); n != 1 {
		t.Fatalf("stale_answers_total = %v, want 1", n)
	}
}
