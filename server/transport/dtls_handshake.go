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
