package transport

import (
	"net/netip"

	"github.com/pion/dtls/v3"
)

// The socket readers (issue 16, pion patches 33 and 39). An established, awake session's
// application data record is handled on the goroutine that read it from the socket, as a plain
// CoAP datagram is (udp_inline.go): pion's Conn.HandleApplicationDataFunc authenticates,
// decrypts and checks it against the replay window as pion's reader would, and hands the
// plaintext to the engine right there; an inline-safe request is answered there too. So
// dtlsReaders goroutines read the socket, and at most dtlsReaders-1 of them answer inline at a
// time (Endpoint.Serve sets the inline limit): however long inline handlers wait on storage,
// one reader is always reading, and a request that finds the others busy goes to the workers'
// queue, or spills (udp_inline.go), as on a plain socket.
//
// Before, one demultiplexer read the socket and queued such records (copied) for 2×Workers+1
// record goroutines, which ran the inline-safe requests that found the workers' queue full on
// goroutines of their own. At 1,000 devices pulling firmware the server fell behind its
// devices, as any server at its limit does, and the records waiting to be served were held
// by goroutines: a thousand queued records, hundreds of runnable overflow goroutines, each
// inline handler waiting its turn behind them in the run queue while holding its slot, which
// sent half the requests on to the workers. Now what waits stays in the socket's receive
// buffer, as with plain CoAP, and the server runs a handful of goroutines.
//
// Everything else (handshakes, alerts, connection id records, a session asleep or falling
// asleep) takes the session's path as before: the reader copies it for the session's
// goroutine and never waits. Records of one session may thus come both ways, and on several
// readers: pion processes them one at a time, and its replay window takes them in any order,
// as datagrams come.

// dtlsReaders is the number of goroutines reading a DTLS socket.
const dtlsReaders = 3

// directRecord is an application data record to be handled by the reader that read it.
type directRecord struct {
	vc   *sessionConn
	conn *dtls.Conn
	fn   func([]byte) // the session's handler for records a reader hands pion (dtls_record.go)
}

// takeDirect reports whether p, an established session's datagram, is an application data record
// the reader is to hand pion itself, and what it needs for that. Called by route with l.mu held.
func (l *dtlsLink) takeDirect(s *dtlsSession, p []byte) (directRecord, bool) {
	if len(p) < 13 || p[0] != 23 || // DTLS application data (RFC 6347 §4.1); not tls12_cid
		!s.established || s.conn == nil || s.vc == nil || s.fromReader == nil || s.idle.falling || s.idle.settling != nil {
		return directRecord{}, false
	}
	// Counted under l.mu: hibernate, which checks quiet under l.mu, never snapshots a session
	// with a record on its way through a reader (dtls_idle.go).
	s.vc.direct.Add(1)
	return directRecord{vc: s.vc, conn: s.conn, fn: s.fromReader}, true
}

// runDirect hands r's record p (from) to pion on the calling reader; a record pion does not take
// (the connection closed meanwhile) goes the session's way after all.
func (l *dtlsLink) runDirect(r directRecord, p []byte, from netip.AddrPort) {
	defer r.vc.direct.Add(-1)
	if r.conn.HandleApplicationDataFunc(p, r.vc.udpAddr(from), r.fn) {
		return
	}
	in := l.fast.inbound(p, from)
	select {
	case r.vc.rx <- in:
	default:
		l.fast.release(in)
	}
}
