package transport

import (
	"net"
	"net/netip"

	"github.com/pion/dtls/v3"
)

// The record hand-off (issue 16, pion patch 10). pion's Conn.Read takes each decrypted record
// from pion's reader goroutine through a channel, after a copy of its own; readSession then
// copied it again into an engine buffer and delivered it. With an application data handler
// set on the connection, pion hands the plaintext to the engine on its reader goroutine
// itself: one goroutine hand-off and one copy fewer per record, and no session goroutine woken
// per record (readSession only waits for the end of the connection, and delivers the records
// pion queued for Read before the handler was set).

// handRecords makes conn deliver the plaintext of every record it decrypts from now on to the
// engine's sink, on pion's reader goroutine, as readSession does with what it reads.
func (l *dtlsLink) handRecords(s *dtlsSession, vc *sessionConn, conn *dtls.Conn) {
	sink := l.fast.sink // set by newEndpoint, before any session exists
	// The identity is the handshake's, fixed from now on, read under the link's lock below before
	// either handler is set; the address is read without the lock (dtls_rx.go), which every
	// record took here before.
	var identity string
	handler := func(overflow overflowMode) func([]byte) {
		return func(p []byte) {
			bp := sink.buffer()
			if len(p) > len(*bp) {
				// Larger than any message the engine accepts: dropped, as Read's
				// errBufferTooSmall dropped it.
				sink.recycle(bp)
				return
			}
			n := copy(*bp, p)
			if l.dc.ConnectionID {
				// pion has moved the connection to the record's address already (patch 10
				// runs the handler after that): nothing to wait for, unlike follow.
				l.followConn(s, conn)
			}
			sink.deliver(bp, n, s.currentAddr(l), identity, overflow)
		}
	}
	// A socket reader hands the records it takes to pion with a handler of its own (pion
	// patch 39, dtls_direct.go): it serves every session and must not stay away from the
	// socket, so an overflowing request spills. pion's reader serves this session alone.
	l.mu.Lock()
	identity = s.identity
	s.fromReader = handler(overflowSpill)
	l.mu.Unlock()
	conn.SetApplicationDataHandler(handler(overflowHere))
}

// followConn moves s to the address pion holds for its peer when it changed (follow without
// its wait).
func (l *dtlsLink) followConn(s *dtlsSession, conn *dtls.Conn) {
	ua, ok := conn.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return
	}
	if to := unmap(ua.AddrPort()); to != s.currentAddr(l) {
		l.moved(s, to)
	}
}

// readDatagram reads one datagram from pc, with its source address unmapped (invalid if it was
// not a UDP address). A *net.UDPConn (lwota's socket) reads without allocating; ReadFrom would
// allocate a *net.UDPAddr for every datagram the demultiplexer reads.
func readDatagram(pc net.PacketConn, buf []byte) (int, netip.AddrPort, error) {
	if uc, ok := pc.(*net.UDPConn); ok {
		n, ap, err := uc.ReadFromUDPAddrPort(buf)
		return n, unmap(ap), err
	}
	n, addr, err := pc.ReadFrom(buf)
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return n, netip.AddrPort{}, err
	}
	return n, unmap(ua.AddrPort()), err
}
