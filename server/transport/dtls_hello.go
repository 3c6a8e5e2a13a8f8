package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
)

// ClientHello record versions (issue 12, item 1).
//
// mbed TLS 2.x clients with their minimum version left at the default send the ClientHello in a
// record whose version is fe 00 (the ClientHello body says fe fd). pion/dtls v3 (v3.1.15,
// pkg/protocol/recordlayer/header.go, Header.Unmarshal) refuses any record version other than
// fe ff and fe fd, and Conn.handleIncomingPacket (conn.go) discards such a record as "broken"
// with a debug line: the device's ClientHellos go unanswered until the handshake times out.
// TLS 1.2 (RFC 5246 Appendix E.1), which DTLS 1.2 builds on, says a server must accept any
// record-layer version in a ClientHello; the version that counts is the one in its body.
//
// The demultiplexer therefore rewrites the record version of an epoch-0 handshake record
// carrying a ClientHello to fe fd before pion sees it, instead of patching pion: epoch-0 records
// are not MAC-protected and the record header is not part of the handshake transcript, so the
// rewrite changes nothing pion verifies, and the session answers as DTLS 1.2 as usual. Only
// ClientHello records are touched; any other record keeps pion's check.

// dtlsVersion12 is the DTLS 1.2 record version (fe fd); fe ff is DTLS 1.0.
const (
	dtlsMajor     = 0xfe
	dtlsMinor12   = 0xfd
	dtlsMinor10   = 0xff
	recordHeader  = 13 // content type, version, epoch, sequence number, length (no connection id)
	handshakeType = 22
	clientHello1  = 1 // HandshakeType client_hello
)

// normalizeHelloVersion rewrites, in place, the record version of every epoch-0 handshake
// record in datagram p that carries a ClientHello fragment and has a DTLS version pion refuses,
// to fe fd. It reports how many records it rewrote. It stops at the first record it cannot
// walk (truncated, or with a connection id, which an epoch-0 record never has).
func normalizeHelloVersion(p []byte) int {
	n := 0
	for len(p) >= recordHeader {
		length := int(p[11])<<8 | int(p[12])
		if p[0] != handshakeType || recordHeader+length > len(p) {
			return n
		}
		if p[3] == 0 && p[4] == 0 && length > 0 && p[recordHeader] == clientHello1 &&
			p[1] == dtlsMajor && p[2] != dtlsMinor12 && p[2] != dtlsMinor10 {
			p[2] = dtlsMinor12
			n++
		}
		p = p[recordHeader+length:]
	}
	return n
}

// Reasons a DTLS handshake failed: the values of the reason label of
// lwota_transport_dtls_handshake_failures_total. Keep the set small and fixed.
const (
	failTimeout     = "timeout"     // not finished within HandshakeTimeout (a silent or vanished client, a lost cookie round trip)
	failPSK         = "psk"         // the PSK identity is unknown, reserved, or the store failed
	failCertificate = "certificate" // the client certificate did not verify, or has no usable name
	failPeerAlert   = "peer_alert"  // the client sent a fatal alert (it did not like our answer)
	failProtocol    = "protocol"    // anything else pion refused: versions, suites, bad Finished, decoding
	failClosed      = "closed"      // replaced by a newer handshake from the same address, or the server closing
)

// handshakeFailure classifies a failed handshake. pskFailed and certFailed say whether our own
// PSK lookup or certificate check refused the client; sctx is the session's context (cancelled
// when it was replaced or the link closed).
func handshakeFailure(sctx context.Context, err error, pskFailed, certFailed bool) string {
	var ne net.Error
	var alert interface{ IsFatalOrCloseNotify() bool } // pion's alertError, unexported
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case pskFailed:
		return failPSK
	case certFailed, errors.As(err, &unknownCA), errors.As(err, &invalid):
		return failCertificate
	case sctx.Err() != nil:
		return failClosed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	case errors.As(err, &alert):
		return failPeerAlert
	default:
		return failProtocol
	}
}
