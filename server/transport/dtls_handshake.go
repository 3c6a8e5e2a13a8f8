package transport

import "github.com/pion/dtls/v3"

// handshakeIdentity is the identity of the session s has just established on conn: the PSK
// identity our PSK callback was asked for, or, for a certificate session, the name in the
// client's certificate. A PSK session needs no ConnectionState, which clones pion's whole
// session state (keys, randoms, certificates) through a serialisation round trip: ~1% of the
// server's CPU per handshake.
func (l *dtlsLink) handshakeIdentity(s *dtlsSession, conn *dtls.Conn) (string, error) {
	if id := s.pskIdentity.Load(); id != nil && !s.pskFailed.Load() {
		// pion asks for a key only when it negotiated a PSK suite, and the handshake
		// succeeded with that key; state.IdentityHint holds the same bytes.
		return *id, nil
	}
	st, _ := conn.ConnectionState()
	return l.sessionIdentity(st)
}

// sessionStackFrame is the size of growSessionStack's frame: a new goroutine's 2 KiB stack that
// needs this much more is doubled until it fits, to 8 KiB.
const sessionStackFrame = 5 << 10

// growSessionStack makes the calling goroutine's stack at least 8 KiB, by calling a function
// with a large frame. A session's goroutine (dtlsLink.run) starts on a small stack and grew it
// in pion's connection setup (ServerWithOptions and createConn: options, config, cipher suites),
// about ten frames deep, where a stack copy (which visits and adjusts every frame) cost ~2% of
// the server's CPU per handshake; called first thing, it copies one frame. pion's own two
// goroutines per handshake do the same (third_party/pion-dtls, patch 15).
//
//go:noinline
func growSessionStack() {
	var frame [sessionStackFrame]byte
	keepStackFrame(frame[:])
}

// keepStackFrame keeps growSessionStack's frame from being optimised away.
//
//go:noinline
func keepStackFrame([]byte) {}
