package transport

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The receive side of a session's sessionConn (issue 16). pion's reader goroutine waits in
// ReadFrom for every record of its session. It used to select on three channels (the
// datagrams, the conn's close and a pion/transport deadline.Deadline's, fetched under that
// Deadline's lock) and to take a mutex twice per read for the idle signal. At 1,000 sessions
// pulling firmware, that was 11% of the server's CPU (16% in the run issue 16 quotes, against
// 7% at 64 sessions): each record touched cold memory of five objects, and locked three
// channels to wait. Now everything that ends a wait arrives on the one channel the datagrams
// come by: Close and a read deadline set a flag and then send a wake-up (an inbound without a
// datagram), and the reader checks the flags before each wait; the idle signal is an atomic.
//
// A wake-up that finds the channel full is not sent: the reader is not blocked then, and it
// checks the flags before it takes the next datagram. The flags are sequentially consistent
// atomics set before the wake-up is tried, so the reader cannot miss both.

// rxState values: where pion's reader is, for settle and quiet.
const (
	rxBusy   int32 = iota // processing what it read
	rxIdle                // waiting in ReadFrom
	rxWaited              // processing, and a settle waits for its next ReadFrom (entered)
)

// sessionRx is a sessionConn's receive state.
type sessionRx struct {
	// rx carries the datagrams the demultiplexer routes to the session, and wake-ups (an
	// inbound whose b is nil) after Close or a read deadline.
	rx      chan inbound
	closed  atomic.Bool
	expired atomic.Bool // the read deadline has passed

	state atomic.Int32 // rxBusy, rxIdle or rxWaited

	// lent is the datagram ReadDatagram lent pion last, released at its next call (a session
	// that ends leaves it to the collector: pion may still be reading it as Close runs).
	lent inbound

	mu sync.Mutex // guards what follows
	// entered, made by a settle that waits, is closed (and forgotten) the next time pion
	// enters ReadFrom, which tells settle that pion is done with the datagrams it took before.
	entered  chan struct{}
	deadline time.Time   // the read deadline; zero: none
	timer    *time.Timer // fires at deadline; made at the first deadline in the future
}

// wake makes a ReadFrom waiting on an empty rx look at the flags again.
func (c *sessionConn) wake() {
	select {
	case c.rx <- inbound{}:
	default: // full: the reader is not waiting, and checks the flags before its next datagram
	}
}

func (c *sessionConn) ReadFrom(b []byte) (int, net.Addr, error) {
	p, err := c.next()
	if err != nil {
		return 0, nil, err
	}
	n := copy(b, p.b)
	c.l.fast.release(p) // dtls_fastpath.go
	return n, c.udpAddr(p.from), nil
}

// ReadDatagram is ReadFrom without pion's read buffer (pion patch 37, dtls.DatagramLender): pion
// reads, and decrypts in place, the demultiplexer's copy of the datagram, lent until its next
// ReadDatagram. Through ReadFrom, pion's reader waited for every datagram holding an 8 KiB
// buffer of its own: 8 KiB of live heap per established session (of about 20 KiB), which the
// collector marked at every cycle; and each datagram was copied once more.
func (c *sessionConn) ReadDatagram() ([]byte, net.Addr, error) {
	// Only pion's reader calls ReadDatagram, one call at a time: lent is its own.
	c.l.fast.release(c.lent)
	c.lent = inbound{}
	p, err := c.next()
	if err != nil {
		return nil, nil, err
	}
	c.lent = p
	return p.b, c.udpAddr(p.from), nil
}

// next waits for the next datagram of ReadFrom or ReadDatagram; the caller releases it.
func (c *sessionConn) next() (inbound, error) {
	if c.state.Swap(rxIdle) == rxWaited {
		c.mu.Lock()
		if c.entered != nil {
			close(c.entered)
			c.entered = nil
		}
		c.mu.Unlock()
	}
	// While pion waits here the state stays rxIdle (settle changes only rxBusy), so it is
	// rxIdle when it leaves.
	defer c.state.Store(rxBusy)
	for {
		if c.closed.Load() {
			return inbound{}, net.ErrClosed
		}
		if c.expired.Load() {
			return inbound{}, timeoutError{}
		}
		p := <-c.rx
		if p.b == nil {
			continue // a wake-up: the flags say why
		}
		return p, nil
	}
}

// settleWait bounds settle, should pion be busy for long.
const settleWait = 100 * time.Millisecond

// settle returns once pion has processed every datagram it has read so far, or ctx ends.
func (c *sessionConn) settle(ctx context.Context) {
	if c.state.Load() == rxIdle {
		return
	}
	c.mu.Lock()
	if c.entered == nil {
		c.entered = make(chan struct{})
	}
	entered := c.entered
	// Tell pion's next ReadFrom to close entered; if it is in ReadFrom already, it will not.
	if !c.state.CompareAndSwap(rxBusy, rxWaited) && c.state.Load() == rxIdle {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-entered:
	case <-ctx.Done():
	case <-t.C:
	}
}

// quiet reports whether pion waits for a datagram with nothing queued for it, and no record
// goroutine has one of its records (dtls_direct.go).
func (c *sessionConn) quiet() bool {
	return c.state.Load() == rxIdle && len(c.rx) == 0 && c.direct.Load() == 0
}

func (c *sessionConn) Close() error {
	if !c.closed.Swap(true) {
		c.wake()
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *sessionConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the deadline of ReadFrom (pion sets one in the past to interrupt its
// reader when the connection's context ends, and takes it back before its next read).
func (c *sessionConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.timer != nil {
		c.timer.Stop()
	}
	switch d := time.Until(t); {
	case t.IsZero():
		c.expired.Store(false)
	case d <= 0:
		c.expired.Store(true)
		c.wake()
	default:
		c.expired.Store(false)
		if c.timer == nil {
			c.timer = time.AfterFunc(d, c.deadlineFired)
		} else {
			c.timer.Reset(d)
		}
	}
	return nil
}

// deadlineFired runs when the timer fires: a fire for a deadline set since is ignored.
func (c *sessionConn) deadlineFired() {
	c.mu.Lock()
	passed := !c.deadline.IsZero() && !time.Now().Before(c.deadline)
	if passed {
		c.expired.Store(true)
	}
	c.mu.Unlock()
	if passed {
		c.wake()
	}
}

// currentAddr is s.addr without the link's lock: the session's record path reads it for every
// record (the Handler's peer, and each record written), where the lock is taken by every
// session's datagrams and by the sweeper's walk over all sessions.
func (s *dtlsSession) currentAddr(*dtlsLink) netip.AddrPort {
	if p := s.at.Load(); p != nil {
		return *p
	}
	return netip.AddrPort{}
}

// setAddr moves s to addr. Called with l.mu held (s.addr is the maps' key).
func (s *dtlsSession) setAddr(addr netip.AddrPort) {
	s.addr = addr
	s.at.Store(&addr)
}
