package transport

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// The direct record path (issue 16, pion patch 19). The demultiplexer handed every datagram of
// an established session to the session's sessionConn, where pion's reader goroutine picked it
// up, decrypted it and ran the engine's application data handler (dtls_record.go): a goroutine
// hand-off per record, and with 1,000 sessions a reader whose stack and state had gone cold in
// the CPU's caches since its last record (the server's CPU per Block2 block doubled from 64 to
// 1,000 sessions; plain CoAP's, answered by a few hot readers, stayed flat). Now the
// demultiplexer hands an established session's application data record to pion's
// Conn.HandleApplicationData itself, which decrypts it and runs the same handler on the
// demultiplexer's goroutine. Everything else (handshakes, alerts, connection id records, a
// session asleep or falling asleep) takes the session's path as before.
//
// Like the plain UDP socket (udp_inline.go), the socket has demuxReaders readers, at most
// demuxReaders-1 of them in a record's handler at a time, so that one is always reading however
// long an inline handler waits on storage; a reader that finds them busy hands the record to
// the session's path instead. Records of one session may thus come both ways at once: pion
// processes them one at a time, and the replay window takes them in any order, as datagrams
// come.

// demuxReaders is how many goroutines read the DTLS socket.
const demuxReaders = plainReaders

// dtlsDirect is the dtlsLink's part of the direct path.
type dtlsDirect struct {
	busy    atomic.Int32  // readers in a record's handler now, at most demuxReaders-1
	records atomic.Uint64 // records taken, for tests
}

// direct hands p, a datagram from (in the reader's buffer, which pion decrypts in place), to its
// session's connection when it is an application data record of an established session that
// is awake and a reader is free to run it, and reports whether it did.
func (l *dtlsLink) direct(p []byte, from netip.AddrPort) bool {
	if len(p) < 13 || p[0] != 23 { // DTLS application data (RFC 6347 §4.1); not tls12_cid
		return false
	}
	if l.directPath.busy.Add(1) > demuxReaders-1 {
		l.directPath.busy.Add(-1)
		return false
	}
	defer l.directPath.busy.Add(-1)
	l.mu.Lock()
	s := l.byAddr[from]
	if s == nil || !s.established || s.conn == nil || s.idle.falling || s.idle.settling != nil || s.vc == nil {
		l.mu.Unlock()
		return false
	}
	s.lastRx = time.Now()
	conn, vc := s.conn, s.vc
	// Counted under l.mu: hibernate, which checks quiet under l.mu, never snapshots a session
	// with a record in here (dtls_idle.go).
	vc.direct.Add(1)
	l.mu.Unlock()
	defer vc.direct.Add(-1)
	if !conn.HandleApplicationData(p, vc.udpAddr(from)) {
		return false
	}
	l.directPath.records.Add(1)
	return true
}
