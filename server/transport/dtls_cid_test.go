package transport

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// natConn is a device's socket behind a NAT that may rebind: writes leave through the socket
// the mapping currently uses, so the server sees a new source port after rebind; reads come
// from either socket.
type natConn struct {
	socks [2]net.PacketConn
	cur   atomic.Int32
	in    chan natDatagram
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type natDatagram struct {
	b    []byte
	from net.Addr
}

func newNATConn(t testing.TB) *natConn {
	t.Helper()
	n := &natConn{in: make(chan natDatagram, 16), done: make(chan struct{})}
	for i := range n.socks {
		s, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.socks[i] = s
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			buf := make([]byte, 1<<16)
			for {
				k, from, err := s.ReadFrom(buf)
				if err != nil {
					return
				}
				select {
				case n.in <- natDatagram{append([]byte(nil), buf[:k]...), from}:
				case <-n.done:
					return
				}
			}
		}()
	}
	t.Cleanup(func() { n.Close(); n.wg.Wait() })
	return n
}

// rebind moves the mapping to the other socket: a new source port.
func (n *natConn) rebind() net.Addr {
	n.cur.Store(1 - n.cur.Load())
	return n.LocalAddr()
}

func (n *natConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-n.in:
		return copy(b, d.b), d.from, nil
	case <-n.done:
		return 0, nil, net.ErrClosed
	}
}

func (n *natConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	return n.socks[n.cur.Load()].WriteTo(b, addr)
}

func (n *natConn) Close() error {
	n.once.Do(func() {
		close(n.done)
		for _, s := range n.socks {
			s.Close()
		}
	})
	return nil
}

func (n *natConn) LocalAddr() net.Addr              { return n.socks[n.cur.Load()].LocalAddr() }
func (n *natConn) SetDeadline(time.Time) error      { return nil }
func (n *natConn) SetReadDeadline(time.Time) error  { return nil }
func (n *natConn) SetWriteDeadline(time.Time) error { return nil }

// TestDTLSConnectionIDRebinding: with ConnectionID on, a device whose NAT mapping changes
// (a new source port) keeps its session: its next request is answered at the new address
// without a new handshake, and lwota's own requests follow it there. Without connection ids the
// datagrams from the new port are dropped (no session there, not a ClientHello).
func TestDTLSConnectionIDRebinding(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cid   bool
		keeps bool
	}{
		{"connection id", true, true},
		{"no connection id", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan Peer, 4)
			te, link := startDTLS(t, registerHandler(new(atomic.Int64), got), DTLSConfig{ConnectionID: tc.cid})
			nat := newNATConn(t)
			first := nat.LocalAddr().(*net.UDPAddr).AddrPort()
			// A device that sends the server's connection id but asks for none itself, as
			// constrained clients do.
			c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nat, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(datagram(t, typeCON, 1, req(POST, "/rd", 1))); err != nil {
				t.Fatal(err)
			}
			if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
				t.Fatalf("answer %+v", f)
			}
			if p := <-got; p.Addr.AddrPort != first {
				t.Fatalf("peer %v, want %v", p.Addr, first)
			}

			moved := nat.rebind().(*net.UDPAddr).AddrPort()
			if _, err := c.Write(datagram(t, typeCON, 2, req(POST, "/rd/abc", 2))); err != nil {
				t.Fatal(err)
			}
			if !tc.keeps {
				eventually(t, "datagram from the new port dropped", func() bool {
					return te.counter(t, "lwota_transport_dtls_datagrams_no_session_total") > 0
				})
				return
			}
			if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created || f.mid != 2 {
				t.Fatalf("answer after rebinding %+v", f)
			}
			p := <-got
			if p.Addr.AddrPort != moved || p.Identity != "dev1" {
				t.Fatalf("peer after rebinding %+v, want %v", p, moved)
			}
			if n := te.counter(t, "lwota_transport_dtls_handshakes_total", "result", "ok"); n != 1 {
				t.Fatalf("%v handshakes, want 1 (the session was kept)", n)
			}
			if n := link.sessions(); n != 1 {
				t.Fatalf("%d sessions, want 1", n)
			}
			// lwota reaches the device at its new address over the same session.
			askDevice(t, te.Endpoint, c, p.Addr, "Do to the new address")
			if link.hasSession(first) {
				t.Fatal("the old address still has a session")
			}
		})
	}
}
