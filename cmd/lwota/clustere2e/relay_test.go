package clustere2e

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/lwota/lwota/storage/pgtest"
)

// redirectConn is a DTLS client's socket whose datagrams can be sent to another address than
// the one the session was dialled to, while what comes back is taken as from the dialled one:
// a device whose traffic a balancer suddenly sends to another node. It keeps the connection id
// of the first tls12_cid record the client sends.
type redirectConn struct {
	net.PacketConn
	dialled net.Addr

	mu  sync.Mutex
	to  net.Addr // nil: the address pion asks for
	cid []byte
}

func (c *redirectConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	if len(b) >= 13+8 && b[0] == 25 && c.cid == nil { // tls12_cid (RFC 9146): the id follows the sequence number
		c.cid = append([]byte(nil), b[11:19]...)
	}
	if c.to != nil {
		addr = c.to
	}
	c.mu.Unlock()
	return c.PacketConn.WriteTo(b, addr)
}

func (c *redirectConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, _, err := c.PacketConn.ReadFrom(b)
	return n, c.dialled, err
}

func (c *redirectConn) redirect(to net.Addr) {
	c.mu.Lock()
	c.to = to
	c.mu.Unlock()
}

func (c *redirectConn) connectionID() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cid
}

// ping sends a CoAP ping (an empty CON) over conn until an answer comes back, for up to within.
func ping(conn *piondtls.Conn, within time.Duration) bool {
	buf := make([]byte, 1500)
	deadline := time.Now().Add(within)
	for mid := uint16(1); time.Now().Before(deadline); mid++ {
		msg := []byte{0x40, 0x00, 0, 0}
		binary.BigEndian.PutUint16(msg[2:], mid)
		if _, err := conn.Write(msg); err != nil {
			return false
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := conn.Read(buf); err == nil && n >= 4 && binary.BigEndian.Uint16(buf[2:4]) == mid {
			return true
		}
	}
	return false
}

// `lwota serve --cluster --node-relay-addr`: the node stores its relay address as its
// forward_addr, issues DTLS connection ids whose first two bytes are its node id, and a record
// of its session that reaches another node is forwarded to it and answered through that node.
// Two nodes, no balancer: the device's socket is pointed at node B in the middle of a session
// it handshook with node A.
func TestServeWiresNodeRelay(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := newNode(t, "node-a"), newNode(t, "node-b")
	relays := map[string]string{a.name: freeUDP(t), b.name: freeUDP(t)}
	for _, nd := range []*node{a, b} {
		nd.start(t, dsn, "--dtls-connection-id", "--node-relay-addr", relays[nd.name])
	}
	list := clusterNodes(t, a)
	if len(list) != 2 {
		t.Fatalf("GET /api/v1/cluster/nodes: %+v, want 2 nodes", list)
	}
	ids := map[string]uint16{}
	for _, n := range list {
		ids[n.Name] = n.ID
		if n.ForwardAddr != relays[n.Name] {
			t.Errorf("%s: forward_addr %q, want its --node-relay-addr %s", n.Name, n.ForwardAddr, relays[n.Name])
		}
	}

	const ep = "relay-wired"
	importPSKs(t, a, []string{ep})
	dialled, err := net.ResolveUDPAddr("udp", a.coaps)
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := net.ResolveUDPAddr("udp", b.coaps)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := &redirectConn{PacketConn: pc, dialled: dialled}
	conn, err := piondtls.ClientWithOptions(sock, dialled,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return pskOf(ep), nil }),
		piondtls.WithPSKIdentityHint([]byte("id-"+ep)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake with %s: %v", a.name, err)
	}
	if !ping(conn, 30*time.Second) {
		t.Fatalf("no answer to a CoAP ping from %s", a.name)
	}
	cid := sock.connectionID()
	if len(cid) != 8 || binary.BigEndian.Uint16(cid) != ids[a.name] {
		t.Fatalf("connection id %x from %s: want 8 bytes starting with its node id %d", cid, a.name, ids[a.name])
	}

	// The same session's records now reach node B, which has no session for them. Node A learns
	// B's forward_addr at its next heartbeat (5 s): until then its answers could not go back.
	waitFor(t, ctx, func() bool { return a.metric(t, "lwota_cluster_relay_peers") == 1 },
		func() string { return a.name + " to learn " + b.name + "'s relay address" })
	sock.redirect(nodeB)
	if !ping(conn, time.Minute) {
		t.Fatalf("no answer through %s to a ping of %s's session", b.name, a.name)
	}
	out, back := metricWith(t, b, "lwota_cluster_forwarded_records_total", `direction="out"`), metricWith(t, b, "lwota_cluster_forwarded_records_total", `direction="back"`)
	in := metricWith(t, a, "lwota_cluster_forwarded_records_total", `direction="in"`)
	if out < 1 || back < 1 || in < 1 {
		t.Fatalf("forwarded records: %s out %v back %v, %s in %v: want each at least 1", b.name, out, back, a.name, in)
	}
	if hs := metricWith(t, b, "lwota_transport_dtls_handshakes_total", `result="ok"`); hs != 0 {
		t.Fatalf("%s counted %v handshakes: the device handshook again instead of being relayed", b.name, hs)
	}
}
