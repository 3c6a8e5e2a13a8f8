package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/pion/dtls/v3"
)

// Hibernation of idle DTLS sessions. A pion connection costs ~25 KiB while it waits: two
// goroutines (lwota's reader and pion's record reader; pion's handshake state machine ends with
// the handshake, pion patch 38), their stacks, and the connection's own state (pion's reader
// waits without a read buffer since pion patch 37: sessionConn lends it each datagram,
// dtls_rx.go). A fleet's devices are idle nearly all the time, so a session
// no datagram arrived on for HibernateAfter is put to sleep: lwota snapshots its keys and record
// counters (pion's State, a few hundred bytes), closes the pion connection without a word to
// the peer, and keeps the session in its maps. The session's next datagram, or a request lwota
// sends it, resumes a pion connection from the snapshot (dtls.ResumeWithOptions): no handshake,
// same keys, same connection id, counters carried on.
//
// pion's rules for a resumed state (ResumeWithOptions) are kept: the old connection is silent
// from the snapshot on (its sessionConn is muted first, so even a close_notify or a
// retransmitted flight is dropped), and the state is restored once, by the one session that
// holds it. Datagrams that arrive while a session is going to sleep are dropped; the peer
// retransmits them (CoAP, or its DTLS flight timer).

// sessionSleep is a session's hibernation state, guarded by the link's mutex.
type sessionSleep struct {
	// gen counts the session's incarnations: the goroutine of an older one ends without
	// ending the session.
	gen uint32
	// state is the snapshot of a sleeping session (pion's State, marshalled); nil while awake.
	state []byte
	// settling is set while the session goes to sleep or wakes up: writers wait for it to close.
	settling chan struct{}
	// falling is true while the snapshot is taken: datagrams are dropped.
	falling bool
}

func newSessionConn(l *dtlsLink, s *dtlsSession) *sessionConn {
	return &sessionConn{l: l, s: s, sessionRx: sessionRx{rx: make(chan inbound, 16)}, exited: make(chan struct{})}
}

// noCancel is the cancel func of a sleeping session, which has no context of its own.
func noCancel() {}

// endIncarnation runs as the goroutine of incarnation gen of s ends: when it is still the
// session's current one, the session ends with it.
func (l *dtlsLink) endIncarnation(s *dtlsSession, gen uint32) {
	l.mu.Lock()
	current := s.idle.gen == gen
	if current && (l.byAddr[s.addr] == s || (s.cid != "" && l.byCID[s.cid] == s)) {
		l.detach(s)
	}
	l.mu.Unlock()
	if current {
		s.cancel()
	}
}

// awake makes s ready to take a datagram and reports whether it can: a sleeping session wakes
// up; one that is falling asleep cannot. Called with l.mu held.
func (l *dtlsLink) awake(s *dtlsSession) bool {
	if s.idle.falling {
		return false
	}
	if s.idle.state != nil {
		l.wake(s)
	}
	return true
}

// hibernate puts s to sleep when it is established, awake and quiet; otherwise it does nothing.
func (l *dtlsLink) hibernate(s *dtlsSession) {
	l.mu.Lock()
	// Certificate sessions stay awake: resuming one would need the certificate options a
	// resumed connection cannot take; PSK sessions are what fleets hold by the hundred thousand.
	_, isCert := CertificateName(s.identity)
	if isCert || !s.established || s.conn == nil || s.idle.settling != nil || l.byAddr[s.addr] != s || !s.vc.quiet() {
		l.mu.Unlock()
		return
	}
	vc, conn := s.vc, s.conn
	vc.muted.Store(true) // from here on the old connection sends nothing
	s.idle.gen++         // its goroutine ends without ending the session
	gen := s.idle.gen
	s.conn = nil
	s.idle.falling = true
	settling := make(chan struct{})
	s.idle.settling = settling
	l.mu.Unlock()

	// The snapshot is taken outside l.mu: pion holds its own lock while it writes through vc,
	// which takes l.mu.
	var state []byte
	st, ok := conn.ConnectionState()
	err := errors.New("no connection state")
	if ok {
		state, err = st.MarshalBinary()
	}
	_ = vc.Close()
	_ = conn.Close() // its close_notify goes nowhere: vc is muted
	if ok {
		state = bytes.Clone(state) // the encoder's buffer has room to spare
	}
	// Wait for the old connection's goroutine to end: it reads s.ctx, which a sleeping session
	// gives back (a context per session costs its parent's child map entry and more).
	select {
	case <-vc.exited:
	case <-l.ctx.Done():
	}

	l.mu.Lock()
	s.idle.falling = false
	s.idle.settling = nil
	close(settling)
	switch {
	case s.idle.gen != gen || l.byAddr[s.addr] != s: // ended meanwhile
	case err != nil:
		l.log.Warn("transport: dtls session cannot sleep; closed", "peer", s.addr.String(), "err", err)
		l.detach(s)
	default:
		s.idle.state = state
		s.vc = nil
		s.cancel() // ends nothing that runs: the session's context goes until it wakes
		s.ctx, s.cancel = l.ctx, noCancel
		l.m.hibernated.Inc()
	}
	l.mu.Unlock()
}

// wake resumes sleeping s on a new conn and goroutine. Called with l.mu held.
func (l *dtlsLink) wake(s *dtlsSession) {
	state := s.idle.state
	s.idle.state = nil
	s.idle.gen++
	s.ctx, s.cancel = context.WithCancel(l.ctx)
	s.vc = newSessionConn(l, s)
	s.idle.settling = make(chan struct{})
	l.m.woken.Inc()
	l.wg.Add(1)
	go l.runWoken(s, s.vc, s.idle.gen, state, s.idle.settling)
}

// runWoken is the goroutine of a woken session: it resumes pion's connection from state, then
// reads records as run does.
func (l *dtlsLink) runWoken(s *dtlsSession, vc *sessionConn, gen uint32, state []byte, settling chan struct{}) {
	defer l.wg.Done()
	defer close(vc.exited)
	defer l.endIncarnation(s, gen)
	settled := false
	settle := func(conn *dtls.Conn) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		settled = true
		if s.idle.settling == settling {
			s.idle.settling = nil
		}
		close(settling)
		if s.idle.gen != gen || conn == nil {
			return false
		}
		s.conn = conn
		return true
	}
	defer func() {
		if !settled {
			settle(nil)
		}
	}()
	var st dtls.State
	if err := st.UnmarshalBinary(state); err != nil {
		l.log.Warn("transport: dtls session cannot wake", "peer", s.currentAddr(l).String(), "err", err)
		return
	}
	conn, err := dtls.ResumeWithOptions(&st, vc, net.UDPAddrFromAddrPort(s.currentAddr(l)), l.resumeOpts...)
	if err != nil {
		_ = vc.Close()
		l.log.Warn("transport: dtls session cannot wake", "peer", s.currentAddr(l).String(), "err", err)
		return
	}
	stop := context.AfterFunc(s.ctx, func() { _ = vc.Close(); _ = conn.Close() })
	defer stop()
	defer func() { _ = vc.Close(); _ = conn.Close() }()
	// A resumed connection starts its readers in its "handshake", which sends nothing.
	if err := conn.HandshakeContext(s.ctx); err != nil {
		return
	}
	if !settle(conn) {
		return
	}
	l.readSession(s, vc, conn) // dtls_fastpath.go
}

// sessionConnFor returns the pion connection of the established session at to, waking it when
// it sleeps and waiting while it falls asleep or wakes up.
func (l *dtlsLink) sessionConnFor(to netip.AddrPort) (*dtls.Conn, error) {
	for {
		l.mu.Lock()
		s := l.byAddr[to]
		if s == nil || !s.established {
			l.mu.Unlock()
			return nil, ErrNoSession
		}
		if s.idle.state != nil {
			l.wake(s)
		}
		c, settling := s.conn, s.idle.settling
		l.mu.Unlock()
		if c != nil {
			return c, nil
		}
		if settling == nil {
			return nil, ErrNoSession
		}
		select {
		case <-settling:
		case <-l.ctx.Done():
			return nil, net.ErrClosed
		}
	}
}

// sleeping reports the sessions asleep, for tests.
func (l *dtlsLink) sleeping() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.byAddr {
		if s.idle.state != nil {
			n++
		}
	}
	return n
}
