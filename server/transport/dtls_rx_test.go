package transport

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestSessionConnAllocations: a session's conn is three allocations (the conn, its datagram
// channel, the channel its goroutine's end closes), not five: the close channel and a
// pion/transport Deadline with a channel of its own went into the datagram channel's wake-ups
// (dtls_rx.go), memory each of 1,000 sessions touched for every record.
func TestSessionConnAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts do not hold under the race detector")
	}
	l, s := &dtlsLink{}, &dtlsSession{}
	if got := testing.AllocsPerRun(100, func() { _ = newSessionConn(l, s) }); got > 3 {
		t.Fatalf("%v allocations per session conn, want at most 3", got)
	}
}

// TestSessionConnReadWakes: what ends pion's wait in ReadFrom, and what does not: Close and a
// read deadline (set in the past, or passing while it waits) end it, with net.ErrClosed and a
// timeout error; a deadline taken back (as pion does before its next read) leaves no stale
// wake-up behind, and the next datagram is read.
func TestSessionConnReadWakes(t *testing.T) {
	from := netip.MustParseAddrPort("192.0.2.1:5684")
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	for _, tc := range []struct {
		name string
		do   func(c *sessionConn)
		want func(error) bool
	}{
		{"close", func(c *sessionConn) { _ = c.Close() }, func(err error) bool { return errors.Is(err, net.ErrClosed) }},
		{"deadline in the past", func(c *sessionConn) { _ = c.SetReadDeadline(time.Unix(0, 1)) }, isTimeout},
		{"deadline passing", func(c *sessionConn) { _ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }, isTimeout},
		{"deadline replaced", func(c *sessionConn) {
			_ = c.SetReadDeadline(time.Now().Add(time.Hour))
			_ = c.SetDeadline(time.Now().Add(10 * time.Millisecond))
		}, isTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSessionConn(&dtlsLink{}, &dtlsSession{})
			defer c.Close()
			read := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFrom(make([]byte, 64))
				read <- err
			}()
			tc.do(c)
			select {
			case err := <-read:
				if !tc.want(err) {
					t.Fatalf("ReadFrom = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFrom still waits")
			}
			if c.closed.Load() {
				return
			}
			// pion takes the deadline back before its next read: that one gets the datagram,
			// whatever wake-up the deadline left in the channel.
			_ = c.SetReadDeadline(time.Time{})
			c.rx <- inbound{b: []byte("datagram"), from: from}
			b := make([]byte, 64)
			n, addr, err := c.ReadFrom(b)
			if err != nil || string(b[:n]) != "datagram" || addr.(*net.UDPAddr).AddrPort() != from {
				t.Fatalf("after the deadline was taken back ReadFrom = %q from %v, %v", b[:n], addr, err)
			}
		})
	}
}

// TestSessionConnReadAfterCloseWithFullQueue: a Close that finds the datagram channel full
// (its wake-up not sent) still ends the reads: the flag is checked before each datagram.
func TestSessionConnReadAfterCloseWithFullQueue(t *testing.T) {
	c := newSessionConn(&dtlsLink{}, &dtlsSession{})
	for range cap(c.rx) {
		c.rx <- inbound{b: []byte("x")}
	}
	_ = c.Close()
	if _, _, err := c.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom after Close = %v, want net.ErrClosed", err)
	}
}

// TestSessionConnWriteWithoutLinkLock: a session writes its records without the link's lock,
// which the demultiplexer takes for every datagram of every session and the sweeper holds
// while it walks all of them; each record written took it to read the session's address.
func TestSessionConnWriteWithoutLinkLock(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	to := peer.LocalAddr().(*net.UDPAddr)
	l := &dtlsLink{pc: pc}
	s := &dtlsSession{}
	s.setAddr(to.AddrPort())
	c := newSessionConn(l, s)
	l.mu.Lock()
	wrote := make(chan error, 1)
	go func() {
		_, err := c.WriteTo([]byte("record"), to)
		wrote <- err
	}()
	select {
	case err := <-wrote:
		l.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		l.mu.Unlock()
		<-wrote
		t.Fatal("a session's write waited for the link's lock")
	}
	if got := s.currentAddr(l); got != to.AddrPort() {
		t.Fatalf("currentAddr = %v, want %v", got, to.AddrPort())
	}
}
