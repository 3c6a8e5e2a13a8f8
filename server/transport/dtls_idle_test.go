package transport

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// TestDTLSIdleSessionSleepsAndWakes checks that an idle session goes to sleep (its goroutines
// end, the session stays), that the device's next record wakes it without a handshake, that a
// request lwota sends wakes it too, with and without connection ids (a device whose NAT moved
// while its session slept keeps it), and that records keep flowing both ways after each wake-up.
func TestDTLSIdleSessionSleepsAndWakes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cid    bool
		rebind bool
	}{
		{"device wakes it", false, false},
		{"device wakes it from a new port (connection id)", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan Peer, 8)
			te, link := startDTLS(t, registerHandler(new(atomic.Int64), got), DTLSConfig{ConnectionID: tc.cid, HibernateAfter: 100 * time.Millisecond})
			nat := newNATConn(t)
			var extra []dtls.ClientOption
			if tc.cid {
				extra = append(extra, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
			}
			c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nat, extra...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange := func(mid uint16) Peer {
				t.Helper()
				if _, err := c.Write(datagram(t, typeCON, mid, req(POST, "/rd", byte(mid)))); err != nil {
					t.Fatal(err)
				}
				if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created || f.mid != mid {
					t.Fatalf("answer to %d: %+v", mid, f)
				}
				return <-got
			}
			serverAsks := func(p Peer) {
				t.Helper()
				askDevice(t, te.Endpoint, c, p.Addr, "Do")
			}
			p := exchange(1)
			base := runtime.NumGoroutine()
			eventually(t, "session asleep", func() bool { return link.sleeping() == 1 })
			if n := link.sessions(); n != 1 {
				t.Fatalf("%d sessions while asleep, want 1", n)
			}
			// lwota's reader and pion's: pion's handshake state machine ended with the handshake
			// (pion patch 38).
			eventually(t, "the session's goroutines gone", func() bool { return runtime.NumGoroutine() <= base-2 })
			if !link.hasSession(p.Addr.AddrPort) {
				t.Fatal("a sleeping session is not reachable")
			}

			if tc.rebind {
				nat.rebind()
			}
			p2 := exchange(2) // the device's record wakes it
			if tc.rebind && p2.Addr == p.Addr {
				t.Fatalf("peer after rebinding %v, want a new port", p2.Addr)
			}
			if p2.Identity != "dev1" {
				t.Fatalf("identity after waking %q", p2.Identity)
			}
			serverAsks(p2)
			exchange(3)

			eventually(t, "asleep again", func() bool { return link.sleeping() == 1 })
			serverAsks(p2) // lwota's request wakes it
			exchange(4)
			if n := te.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 1 {
				t.Fatalf("%v handshakes, want 1 (the session was resumed)", n)
			}
			if n := te.counter(t, "lwota_transport_dtls_sessions_woken_total"); n < 2 {
				t.Fatalf("woken %v times, want 2", n)
			}
		})
	}
}

// TestDTLSSleepingSessionEnds checks that a sleeping session still ends at IdleTimeout, and that
// a new handshake from its address replaces it.
func TestDTLSSleepingSessionEnds(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{HibernateAfter: 50 * time.Millisecond, IdleTimeout: 600 * time.Millisecond})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := pc.LocalAddr().String()
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", pc)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "asleep", func() bool { return link.sleeping() == 1 })
	c.Close() // its close_notify wakes the session, which ends
	eventually(t, "ended", func() bool { return link.sessions() == 0 })

	pc, err = net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	c, err = dialDTLS(t, te.addr, "dev1", "secretkey123", pc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "asleep", func() bool { return link.sleeping() == 1 })
	// The device restarts: a new handshake from the same address replaces the sleeping session.
	c2, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	eventually(t, "idle sessions closed", func() bool { return link.sessions() == 0 })
	if n := te.counter(t, "lwota_transport_dtls_sessions_idle_closed_total"); n < 1 {
		t.Fatalf("idle closed %v", n)
	}
}

// TestDTLSRelayWakesSleepingSession checks a sleeping session in a cluster: its connection id
// (node 1's, prefixed) stays routable while it sleeps, so a record that reaches node 2 after
// the device's NAT moved is relayed to node 1 and wakes the session there, without a
// handshake; the answer goes back through node 2, and so does a request node 1 sends after
// the session fell asleep again.
func TestDTLSRelayWakesSleepingSession(t *testing.T) {
	got := make(chan Peer, 4)
	h := fwHandler(nil, got, nil)
	key := relayKey(t)
	pa, ra := listenRelay(t)
	pb, rb := listenRelay(t)
	relays := StaticRelays{1: ra, 2: rb}
	a, la := startDTLS(t, h, DTLSConfig{ConnectionID: true, HibernateAfter: 100 * time.Millisecond, Node: NodeConfig{ID: 1, Relay: pa, Relays: relays, Key: key}})
	b, _ := startDTLS(t, h, DTLSConfig{ConnectionID: true, Node: NodeConfig{ID: 2, Relay: pb, Relays: relays, Key: key}})
	lb := startBalancer(t, func(flow int) int { return min(flow, 1) }, a.addr.AddrPort, b.addr.AddrPort)
	nat := newNATConn(t)
	cl, err := dialDTLS(t, Addr{Network: DTLS, AddrPort: lb.addr()}, "dev1", "secretkey123", nat,
		dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	exchange := func(mid uint16) Peer {
		t.Helper()
		if _, err := cl.Write(datagram(t, typeCON, mid, req(POST, "/rd", byte(mid)))); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, cl); f.msg == nil || f.msg.Code != Created || f.mid != mid {
			t.Fatalf("answer to %d: %+v", mid, f)
		}
		return <-got
	}
	exchange(1)
	waitFor(t, time.Minute, "the session asleep at node 1", func() bool { return la.sleeping() == 1 })
	if cid := la.sessionCID(); len(cid) != cidSize || !la.hasCID([]byte(cid)) {
		t.Fatalf("a sleeping session's connection id %x is not routable", cid)
	} else if node, ok := cidNode(cidRecord([]byte(cid))); !ok || node != 1 {
		t.Fatalf("connection id %x names node %d, want 1", cid, node)
	}

	nat.rebind() // the balancer now sends the device's datagrams to node 2
	p := exchange(2)
	if node, _, ok := fromVirtual(p.Addr.AddrPort); !ok || node != 2 || p.Identity != "dev1" {
		t.Fatalf("peer after the move %+v, want dev1 via node 2", p)
	}
	waitFor(t, time.Minute, "asleep again", func() bool { return la.sleeping() == 1 })
	// The request wakes the session at node 1 and is answered through node 2.
	askDevice(t, a.Endpoint, cl, p.Addr, "Do to the sleeping session through node 2")
	if n := a.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 1 {
		t.Fatalf("%v handshakes at node 1, want 1 (resumed, not renegotiated)", n)
	}
	if n := a.counter(t, "lwota_transport_dtls_sessions_woken_total"); n < 2 {
		t.Fatalf("woken %v times at node 1, want 2", n)
	}
	if n := b.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 0 {
		t.Fatalf("%v handshakes at node 2, want 0", n)
	}
}

// sessionCID returns the connection id of a session, of the link's one session.
func (l *dtlsLink) sessionCID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.byAddr {
		return s.cid
	}
	return ""
}
