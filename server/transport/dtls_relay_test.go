package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// testCluster is two DTLS Endpoints, nodes 1 (A) and 2 (B), each with its relay socket.
type testCluster struct {
	a, b         *testEndpoint
	la, lb       *dtlsLink
	relayA, relB netip.AddrPort
	key          []byte
}

func relayKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func listenRelay(t testing.TB) (net.PacketConn, netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// startCluster starts nodes 1 and 2 serving h, with relays to each other.
func startCluster(t testing.TB, h Handler) *testCluster {
	t.Helper()
	c := &testCluster{key: relayKey(t)}
	pa, ra := listenRelay(t)
	pb, rb := listenRelay(t)
	c.relayA, c.relB = ra, rb
	relays := StaticRelays{1: ra, 2: rb}
	c.a, c.la = startDTLS(t, h, DTLSConfig{ConnectionID: true, Node: NodeConfig{ID: 1, Relay: pa, Relays: relays, Key: c.key}})
	c.b, c.lb = startDTLS(t, h, DTLSConfig{ConnectionID: true, Node: NodeConfig{ID: 2, Relay: pb, Relays: relays, Key: c.key}})
	return c
}

// waitFor polls cond for up to within: generous, the machine running the tests is busy.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// udpBalancer is nginx's UDP stream proxy in miniature: each new client address gets its own
// upstream socket to the backend pick chooses, and answers from that backend go back to the
// client from the balancer's address. A client whose source port changes is a new flow.
type udpBalancer struct {
	pc       net.PacketConn
	backends []netip.AddrPort
	pick     func(flow int) int
	mu       sync.Mutex
	flows    map[netip.AddrPort]*net.UDPConn
	picked   []int
	wg       sync.WaitGroup
}

func startBalancer(t testing.TB, pick func(flow int) int, backends ...netip.AddrPort) *udpBalancer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &udpBalancer{pc: pc, backends: backends, pick: pick, flows: map[netip.AddrPort]*net.UDPConn{}}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() {
		pc.Close()
		b.mu.Lock()
		for _, up := range b.flows {
			up.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *udpBalancer) addr() netip.AddrPort { return b.pc.LocalAddr().(*net.UDPAddr).AddrPort() }

// backendsPicked lists the backend of each flow, in order.
func (b *udpBalancer) backendsPicked() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.picked...)
}

func (b *udpBalancer) serve() {
	defer b.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := b.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		client := from.(*net.UDPAddr).AddrPort()
		b.mu.Lock()
		up := b.flows[client]
		if up == nil {
			i := b.pick(len(b.picked))
			if up, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.backends[i])); err != nil {
				b.mu.Unlock()
				continue
			}
			b.flows[client] = up
			b.picked = append(b.picked, i)
			b.wg.Add(1)
			go func() { // answers of the backend, to the client
				defer b.wg.Done()
				rb := make([]byte, 1<<16)
				for {
					k, err := up.Read(rb)
					if err != nil {
						return
					}
					_, _ = b.pc.WriteTo(rb[:k], net.UDPAddrFromAddrPort(client))
				}
			}()
		}
		b.mu.Unlock()
		_, _ = up.Write(buf[:n])
	}
}

// fwHandler registers devices (POST /rd, telling got) and serves pkg at GET /fw, telling
// fetches which peer asked.
func fwHandler(pkg []byte, got chan<- Peer, fetches chan<- Peer) Handler {
	return HandlerFunc(func(_ context.Context, from Peer, r *Message) *Message {
		switch {
		case r.Code == POST && r.Path == "/rd":
			select {
			case got <- from:
			default:
			}
			m := NewMessage(Created)
			m.LocationPath = []string{"rd", "dev"}
			return m
		case r.Code == POST && strings.HasPrefix(r.Path, "/rd/"):
			return NewMessage(Changed)
		case r.Code == GET && r.Path == "/fw":
			select {
			case fetches <- from:
			default:
			}
			m := NewMessage(Content)
			m.Payload = pkg
			return m
		}
		return NewMessage(NotFound)
	})
}

// TestDTLSRelayNATRebindingPull: a device with a connection id pulls a package from node A
// through a balancer; after 3 blocks its NAT rebinds (the simulator's nat-rebinding profile),
// so the balancer sends its records to node B, which has no session for them. B forwards them
// to A (the id names A), A answers through B, and the pull finishes on the same session: no
// second handshake for it, and A's handler sees the device at the virtual address "via B".
// Without the relay, B drops the records (no session) and the pull never finishes.
func TestDTLSRelayNATRebindingPull(t *testing.T) {
	pkg := make([]byte, 10*1024+300) // 11 blocks of 1024
	_, _ = rand.Read(pkg)
	registered, fetches := make(chan Peer, 1), make(chan Peer, 64)
	c := startCluster(t, fwHandler(pkg, registered, fetches))
	lb := startBalancer(t, func(flow int) int { return min(flow, 1) }, c.a.addr.AddrPort, c.b.addr.AddrPort)

	cfg := lwm2mtest.ApplyProfileNATRebinding(lwm2mtest.DeviceConfig{
		Endpoint: "dev1", PSKIdentity: "dev1", PSK: []byte("secretkey123"), Protocols: []int{lwm2mtest.ProtoCoAPS},
		BlockTimeout: time.Second, BlockRetries: 6, RequestTimeout: 30 * time.Second,
	})
	d := lwm2mtest.NewDevice(cfg, nil)
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := d.Start(ctx, c.a.addr.AddrPort.String()); err != nil { // registers with A directly
		t.Fatalf("start: %v", err)
	}
	var dev Peer
	select {
	case dev = <-registered:
	case <-ctx.Done():
		t.Fatal("no registration")
	}

	write := NewMessage(PUT)
	write.Path, write.ContentFormat = "/5/0/1", 0
	write.Payload = []byte("coaps://" + lb.addr().String() + "/fw")
	if ans, err := c.a.Do(ctx, dev.Addr, write); err != nil || ans.Code != Changed {
		t.Fatalf("write Package URI: %v %+v", err, ans)
	}
	waitFor(t, time.Minute, "the package downloaded", func() bool {
		s, _ := d.FirmwareState()
		return s == lwm2mtest.FWDownloaded
	})

	st := d.Stats()
	if st.Rebinds != 1 || st.BytesDownloaded != uint64(len(pkg)) || st.ImagesReceived != 1 {
		t.Fatalf("device stats: %d rebinds, %d bytes, %d images; want 1, %d, 1", st.Rebinds, st.BytesDownloaded, st.ImagesReceived, len(pkg))
	}
	if got := lb.backendsPicked(); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("balancer flows went to %v, want [A B]: the rebinding did not move the device", got)
	}
	// One handshake for the registration and one for the pull, both at A; none at B.
	if n := c.a.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 2 {
		t.Fatalf("%v handshakes at A, want 2", n)
	}
	if n := c.b.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 0 {
		t.Fatalf("%v handshakes at B, want 0", n)
	}
	// 8 blocks after the rebinding, at least; B counts the last answer after the device has it.
	waitFor(t, 10*time.Second, "8 or more records forwarded each way", func() bool {
		out := c.b.counter(t, "lwota_cluster_forwarded_records_total", "direction", "out")
		in := c.a.counter(t, "lwota_cluster_forwarded_records_total", "direction", "in")
		back := c.b.counter(t, "lwota_cluster_forwarded_records_total", "direction", "back")
		return out >= 8 && in >= 8 && back >= 8
	})
	// The last block was asked for from the virtual address "via node 2, from the balancer".
	var last Peer
	for len(fetches) > 0 {
		last = <-fetches
	}
	node, src, ok := fromVirtual(last.Addr.AddrPort)
	if !ok || node != 2 || src.Addr() != lb.addr().Addr() || last.Identity != "dev1" {
		t.Fatalf("last block asked by %+v, want dev1 via node 2 from %v", last, lb.addr().Addr())
	}
}

// cidRecord is a tls12_cid record header with connection id cid and a body of junk: what
// the demultiplexer routes by, though pion would reject its MAC.
func cidRecord(cid []byte) []byte {
	b := []byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9}
	b = append(b, cid...)
	b = binary.BigEndian.AppendUint16(b, 24)
	return append(b, bytes.Repeat([]byte{0xaa}, 24)...)
}

func cidOf(node uint16) []byte {
	cid := make([]byte, cidSize)
	_, _ = rand.Read(cid)
	binary.BigEndian.PutUint16(cid, node)
	return cid
}

func sendUDP(t *testing.T, to netip.AddrPort, b []byte) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestDTLSRelayDrops: records the relay cannot place are dropped and counted, and start
// nothing: a connection id naming a node without a relay address (at the receiving node), and
// a forwarded id no session has (at its owner).
func TestDTLSRelayDrops(t *testing.T) {
	c := startCluster(t, fwHandler(nil, nil, nil))

	sendUDP(t, c.b.addr.AddrPort, cidRecord(cidOf(7))) // node 7 is not in the cluster
	waitFor(t, 10*time.Second, "unknown node dropped", func() bool {
		return c.b.counter(t, "lwota_cluster_forwarded_records_dropped_total", "reason", "unknown_node") == 1
	})

	sendUDP(t, c.b.addr.AddrPort, cidRecord(cidOf(1))) // node A, but A issued no such id
	waitFor(t, 10*time.Second, "unknown connection id dropped at the owner", func() bool {
		return c.a.counter(t, "lwota_cluster_forwarded_records_dropped_total", "reason", "unknown_cid") == 1
	})
	if n := c.b.counter(t, "lwota_cluster_forwarded_records_total", "direction", "out"); n != 1 {
		t.Fatalf("B forwarded %v records, want 1", n)
	}
	for _, te := range []*testEndpoint{c.a, c.b} {
		if n := te.counter(t, "lwota_cluster_forwarded_records_total", "direction", "in"); n != 0 {
			t.Fatalf("%v records taken in, want 0", n)
		}
		if n := te.counter(t, "lwota_transport_dtls_datagrams_no_session_total"); n != 0 {
			t.Fatalf("%v no-session drops: the records should not reach the session table", n)
		}
	}
	if c.la.sessions() != 0 || c.lb.sessions() != 0 {
		t.Fatal("a dropped record made a session")
	}
}

// TestDTLSRelayRejectsForgedEnvelope: an envelope not authenticated by the cluster's relay key
// is dropped: a "back" envelope would otherwise make the node send anything to anyone from its
// DTLS socket. Each forgery is followed by a genuine envelope; the victim must receive only
// the genuine one.
func TestDTLSRelayRejectsForgedEnvelope(t *testing.T) {
	c := startCluster(t, fwHandler(nil, nil, nil))
	victim, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	to := victim.LocalAddr().(*net.UDPAddr).AddrPort()
	env := func(key []byte, data string) []byte {
		return appendRelayEnvelope(nil, key, relayEnvelope{kind: relayBack, sender: 1, source: to, data: []byte(data)})
	}
	for _, tc := range []struct {
		name   string
		forged []byte
		reason string
	}{
		{"other key", env(relayKey(t), "forged"), "bad_mac"},
		{"altered data", func() []byte { b := env(c.key, "genuine"); b[len(b)-relayMACSize-1] ^= 1; return b }(), "bad_mac"},
		{"no mac", env(c.key, "forged")[:20], "malformed"},
		{"not an envelope", []byte("hello"), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := c.b.counter(t, "lwota_cluster_forwarded_records_dropped_total", "reason", tc.reason)
			sendUDP(t, c.relB, tc.forged)
			sendUDP(t, c.relB, env(c.key, "genuine "+tc.name))
			buf := make([]byte, 1024)
			_ = victim.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, _, err := victim.ReadFrom(buf)
			if err != nil {
				t.Fatalf("genuine envelope not delivered: %v", err)
			}
			if got := string(buf[:n]); got != "genuine "+tc.name {
				t.Fatalf("victim got %q first", got)
			}
			if got := c.b.counter(t, "lwota_cluster_forwarded_records_dropped_total", "reason", tc.reason); got != before+1 {
				t.Fatalf("%s drops %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	// The counter follows the write the victim has already seen.
	waitFor(t, 10*time.Second, "the 4 genuine records counted as sent back", func() bool {
		return c.b.counter(t, "lwota_cluster_forwarded_records_total", "direction", "back") == 4
	})
}

// TestDTLSNodeConnectionIDs: a node's connection ids carry its id in their first two bytes and
// keep cidSize bytes; node id 0 (a single node) keeps random ids and no relay, so a record
// with another node's id is dropped as before (no session), not forwarded.
func TestDTLSNodeConnectionIDs(t *testing.T) {
	t.Run("node 0x0102", func(t *testing.T) {
		pc, _ := listenRelay(t)
		te, link := startDTLS(t, fwHandler(nil, nil, nil), DTLSConfig{ConnectionID: true,
			Node: NodeConfig{ID: 0x0102, Relay: pc, Relays: StaticRelays{}, Key: relayKey(t)}})
		cl, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		link.mu.Lock()
		defer link.mu.Unlock()
		if len(link.byCID) != 1 {
			t.Fatalf("%d connection ids, want 1", len(link.byCID))
		}
		for cid := range link.byCID {
			if len(cid) != cidSize || cid[0] != 0x01 || cid[1] != 0x02 {
				t.Fatalf("connection id %x, want %d bytes starting 0102", cid, cidSize)
			}
		}
	})
	t.Run("single node", func(t *testing.T) {
		te, link := startDTLS(t, fwHandler(nil, nil, nil), DTLSConfig{ConnectionID: true})
		if link.relay != nil {
			t.Fatal("a single node has a relay")
		}
		prefixes := map[string]bool{}
		for range 16 {
			cid := link.newCID()
			if len(cid) != cidSize {
				t.Fatalf("connection id of %d bytes", len(cid))
			}
			prefixes[string(cid[:2])] = true
		}
		if len(prefixes) < 2 {
			t.Fatal("16 connection ids with one prefix: not random")
		}
		sendUDP(t, te.addr.AddrPort, cidRecord(cidOf(7)))
		waitFor(t, 10*time.Second, "dropped without a session", func() bool {
			return te.counter(t, "lwota_transport_dtls_datagrams_no_session_total") == 1
		})
		if n := te.counter(t, "lwota_cluster_forwarded_records_dropped_total", "reason", "unknown_node"); n != 0 {
			t.Fatal("a single node counted a relay drop")
		}
	})
}

// TestDTLSNodeConfig: a node id without what forwarding needs is refused by NewDTLS.
func TestDTLSNodeConfig(t *testing.T) {
	pc, _ := listenRelay(t)
	defer pc.Close()
	ok := NodeConfig{ID: 3, Relay: pc, Relays: StaticRelays{}, Key: make([]byte, 32)}
	for _, tc := range []struct {
		name string
		cid  bool
		edit func(*NodeConfig)
		want string
	}{
		{"no connection ids", false, func(*NodeConfig) {}, "without connection ids"},
		{"no relay socket", true, func(c *NodeConfig) { c.Relay = nil }, "without a relay socket"},
		{"no relay addresses", true, func(c *NodeConfig) { c.Relays = nil }, "without relay addresses"},
		{"short key", true, func(c *NodeConfig) { c.Key = make([]byte, 16) }, "shorter than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := ok
			tc.edit(&n)
			sock, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			_, err = NewDTLS(sock, fwHandler(nil, nil, nil), testConfig(), DTLSConfig{PSK: testKeys, ConnectionID: tc.cid, Node: n}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewDTLS: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRelayEnvelope: envelopes round-trip, and every malformed or unauthenticated one is refused.
func TestRelayEnvelope(t *testing.T) {
	key := relayKey(t)
	v4 := netip.MustParseAddrPort("192.0.2.7:40001")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:5684")
	for _, e := range []relayEnvelope{
		{kind: relayForward, sender: 2, source: v4, data: []byte{25, 1, 2}},
		{kind: relayBack, sender: 65535, source: v6, data: bytes.Repeat([]byte{7}, 4096)},
	} {
		b := appendRelayEnvelope(nil, key, e)
		got, err := decodeRelayEnvelope(b, key, 4096)
		if err != nil || got.kind != e.kind || got.sender != e.sender || got.source != e.source || !bytes.Equal(got.data, e.data) {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	good := appendRelayEnvelope(nil, key, relayEnvelope{kind: relayForward, sender: 2, source: v4, data: []byte("x")})
	resign := func(f func(b []byte) []byte) []byte { // alter the body and sign it again
		b := f(append([]byte(nil), good[:len(good)-relayMACSize]...))
		return append(b, relayMAC(key, b)...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errRelayMalformed},
		{"bad magic", resign(func(b []byte) []byte { b[0] = 'X'; return b }), errRelayMalformed},
		{"version 2", resign(func(b []byte) []byte { b[3] = 2; return b }), errRelayMalformed},
		{"kind 3", resign(func(b []byte) []byte { b[4] = 3; return b }), errRelayMalformed},
		{"sender 0", resign(func(b []byte) []byte { b[5], b[6] = 0, 0; return b }), errRelayMalformed},
		{"family 5", resign(func(b []byte) []byte { b[7] = 5; return b }), errRelayMalformed},
		{"no data", resign(func(b []byte) []byte { return b[:len(b)-1] }), errRelayMalformed},
		{"oversize data", appendRelayEnvelope(nil, key, relayEnvelope{kind: relayForward, sender: 2, source: v4, data: make([]byte, 4097)}), errRelayMalformed},
		{"4-in-6 source", resign(func(b []byte) []byte {
			a := netip.AddrFrom16(v4.Addr().As16()).AsSlice()
			out := append(append([]byte(nil), b[:7]...), 6)
			out = append(out, a...)
			return append(out, b[12:]...)
		}), errRelayMalformed},
		{"bad mac", append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^1), errRelayMAC},
		{"other key", appendRelayEnvelope(nil, relayKey(t), relayEnvelope{kind: relayForward, sender: 2, source: v4, data: []byte("x")}), errRelayMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRelayEnvelope(tc.b, key, 4096); !errors.Is(err, tc.want) {
				t.Fatalf("decode: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVirtualAddr: a virtual peer address names the node and the IPv4 source and nothing else
// decodes as one.
func TestVirtualAddr(t *testing.T) {
	src := netip.MustParseAddrPort("10.1.2.3:6000")
	v, ok := virtualAddr(2, src)
	if !ok || v.String() != "[100::2:0:a01:203]:6000" {
		t.Fatalf("virtual %v %v", v, ok)
	}
	if n, s, ok := fromVirtual(v); !ok || n != 2 || s != src {
		t.Fatalf("back: %v %v %v", n, s, ok)
	}
	for _, a := range []string{"10.1.2.3:6000", "[2001:db8::1]:1", "[100::0:0:a01:203]:1", "[100::2:1:a01:203]:1", "[::ffff:10.1.2.3]:1"} {
		if _, _, ok := fromVirtual(netip.MustParseAddrPort(a)); ok {
			t.Fatalf("%s decoded as virtual", a)
		}
	}
	if _, ok := virtualAddr(2, netip.MustParseAddrPort("[2001:db8::1]:1")); ok {
		t.Fatal("an IPv6 source made a virtual address")
	}
}

// FuzzRelayEnvelope: the decoder never panics, never returns data beyond its bound, and what it
// accepts encodes back to the same bytes (one encoding per envelope).
func FuzzRelayEnvelope(f *testing.F) {
	key := bytes.Repeat([]byte{0x42}, 32)
	f.Add(appendRelayEnvelope(nil, key, relayEnvelope{kind: relayForward, sender: 2, source: netip.MustParseAddrPort("192.0.2.7:40001"), data: cidRecord(cidOf(1))}))
	f.Add(appendRelayEnvelope(nil, key, relayEnvelope{kind: relayBack, sender: 1, source: netip.MustParseAddrPort("[2001:db8::1]:5684"), data: []byte{23, 0xfe, 0xfd}}))
	f.Add([]byte("LWR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range [][]byte{key, nil} { // nil: the MAC never matches, the checks before it still run
			e, err := decodeRelayEnvelope(b, k, 512)
			if err != nil {
				continue
			}
			if len(e.data) == 0 || len(e.data) > 512 {
				t.Fatalf("data of %d bytes accepted", len(e.data))
			}
			if again := appendRelayEnvelope(nil, k, e); !bytes.Equal(again, b) {
				t.Fatalf("re-encoded %x, want %x", again, b)
			}
		}
	})
}

// TestDTLSRelayDoFollowsDevice: after a device's records start reaching node B, lwota's own
// requests from node A (Do, as the update driver and the API send them) reach it through B, at
// the address the Handler saw; and its requests are answered the same way. Without the relay
// the device's request after the move gets no answer.
func TestDTLSRelayDoFollowsDevice(t *testing.T) {
	got := make(chan Peer, 4)
	c := startCluster(t, fwHandler(nil, got, nil))
	lb := startBalancer(t, func(flow int) int { return min(flow, 1) }, c.a.addr.AddrPort, c.b.addr.AddrPort)
	nat := newNATConn(t)
	cl, err := dialDTLS(t, Addr{Network: DTLS, AddrPort: lb.addr()}, "dev1", "secretkey123", nat,
		dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Write(datagram(t, typeCON, 1, req(POST, "/rd", 1))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, cl); f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
	<-got

	nat.rebind()
	if _, err := cl.Write(datagram(t, typeCON, 2, req(POST, "/rd", 2))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, cl); f.msg == nil || f.msg.Code != Created || f.mid != 2 {
		t.Fatalf("answer after the move %+v", f)
	}
	p := <-got
	if node, _, ok := fromVirtual(p.Addr.AddrPort); !ok || node != 2 || p.Identity != "dev1" {
		t.Fatalf("peer after the move %+v, want dev1 via node 2", p)
	}
	askDevice(t, c.a.Endpoint, cl, p.Addr, "Do through node B")
	if got := lb.backendsPicked(); len(got) != 2 || got[1] != 1 {
		t.Fatalf("balancer flows %v, want [A B]", got)
	}
	if n := c.a.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 1 {
		t.Fatalf("%v handshakes at A, want 1", n)
	}
}

// TestLookupRelays: forward addresses from the node table become relay addresses; a node without
// a usable one has none (its records are dropped as unknown_node).
func TestLookupRelays(t *testing.T) {
	table := map[uint16]string{1: "10.0.0.1:5690", 2: "", 3: "node-c:5690", 4: "0.0.0.0:5690", 5: "[fd00::5]:5690"}
	r := LookupRelays(func(id uint16) (string, bool) { s, ok := table[id]; return s, ok })
	for _, tc := range []struct {
		node uint16
		want string
	}{{1, "10.0.0.1:5690"}, {2, ""}, {3, ""}, {4, ""}, {5, "[fd00::5]:5690"}, {9, ""}} {
		ap, ok := r.RelayAddr(tc.node)
		if got := map[bool]string{true: ap.String(), false: ""}[ok]; got != tc.want {
			t.Errorf("node %d: %q, want %q", tc.node, got, tc.want)
		}
	}
}
