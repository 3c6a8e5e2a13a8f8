package transport

import (
	"net/netip"

	"github.com/pion/dtls/v3"
)

// The record goroutines (issue 16, pion patch 33). The demultiplexer handed every datagram of
// an established session to the session's sessionConn, where pion's reader goroutine picked it
// up, decrypted it and ran the engine's application data handler (dtls_record.go): one parked
// goroutine woken per record, and with 1,000 sessions a reader whose stack (the whole depth of
// the handler and the write below it) had gone cold in the CPU's caches since its last record.
// Now the demultiplexer queues an established, awake session's application data record for a
// few record goroutines (2*Config.Workers+1 of them), which hand it to pion's
// Conn.HandleApplicationData: pion authenticates, decrypts and checks it against the replay
// window as its reader would, and runs the same handler there. While records keep coming,
// those goroutines take them one after the other without parking, on stacks that stay hot.
// Everything else (handshakes, alerts, connection id records, a session asleep or falling
// asleep) takes the session's path as before, and so does a record that finds the queue full:
// the demultiplexer never waits. Records of one session may thus come both ways: pion
// processes them one at a time, and its replay window takes them in any order, as datagrams
// come.

// directQueue is how many records may wait for a record goroutine.
const directQueue = 1024

// directRecord is an application data record on its way to a record goroutine.
type directRecord struct {
	s    *dtlsSession
	vc   *sessionConn
	conn *dtls.Conn
	in   inbound // a pooled copy (dtlsFastPath.inbound)
}

// dtlsDirect is the dtlsLink's part of the direct path.
type dtlsDirect struct {
	// goroutines is 2*Config.Workers+1: at most Config.Workers inline handlers run at once
	// (dtls_inline.go), and at most as many overflowing requests on record goroutines
	// (admitAndHandle; beyond that each gets a goroutine of its own), so however long handlers
	// wait on storage, one record goroutine is always free to take the next record.
	goroutines int
	q          chan directRecord
}

// startDirect starts the record goroutines. Called by start, with l.mu held.
func (l *dtlsLink) startDirect() {
	l.direct.q = make(chan directRecord, directQueue)
	l.wg.Add(l.direct.goroutines)
	for range l.direct.goroutines {
		go l.records()
	}
}

// queueDirect queues p, an established session's datagram from, for a record goroutine when it
// is an application data record the session can take that way, and reports whether it did.
// Called by dispatch with l.mu held.
func (l *dtlsLink) queueDirect(s *dtlsSession, p []byte, from netip.AddrPort) bool {
	if l.direct.q == nil || len(p) < 13 || p[0] != 23 || // DTLS application data (RFC 6347 §4.1); not tls12_cid
		!s.established || s.conn == nil || s.vc == nil || s.idle.falling || s.idle.settling != nil {
		return false
	}
	r := directRecord{s: s, vc: s.vc, conn: s.conn, in: l.fast.inbound(p, from)}
	// Counted under l.mu: hibernate, which checks quiet under l.mu, never snapshots a session
	// with a record on its way here (dtls_idle.go).
	r.vc.direct.Add(1)
	select {
	case l.direct.q <- r:
		return true
	default:
		r.vc.direct.Add(-1)
		l.fast.release(r.in)
		return false
	}
}

// records runs queued records until the link closes.
func (l *dtlsLink) records() {
	defer l.wg.Done()
	for {
		select {
		case r := <-l.direct.q:
			l.runDirect(r)
		case <-l.ctx.Done():
			return
		}
	}
}

// runDirect hands r to pion; a record pion does not take (the connection closed meanwhile) goes
// the session's way after all.
func (l *dtlsLink) runDirect(r directRecord) {
	defer r.vc.direct.Add(-1)
	if r.conn.HandleApplicationData(r.in.b, r.vc.udpAddr(r.in.from)) {
		l.fast.release(r.in)
		return
	}
	select {
	case r.vc.rx <- r.in:
	default:
		l.fast.release(r.in)
	}
}
