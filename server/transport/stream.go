package transport

import (
	"crypto/x509"
	"errors"

	"github.com/plgd-dev/go-coap/v3/message"
)

// The networks of CoAP over TCP and TLS (RFC 8323), served by package transport/tcp.
const (
	TCP Network = "tcp"
	TLS Network = "tls"
)

// ErrNotConnected is returned by a stream transport's Do and Upload when the peer has no open
// connection, or the connection failed while the request was being written: nothing reached
// the peer, so the request may be sent again once it connects.
var ErrNotConnected = errors.New("transport: peer not connected")

// Secure reports whether the network authenticates its peers (DTLS, TLS): a registration from
// it is bound to the identity the handshake proved.
func (n Network) Secure() bool { return n == DTLS || n == TLS }

// The helpers below let the stream transports (transport/tcp) share the message conversion of
// the datagram engine: one place decides how options map to Message fields.

// MessageFromOptions builds the Message of a decoded CoAP message with code, token, options and
// payload, copying what it keeps. reject is non-zero when a request must be refused with that
// code without reaching the Handler (an unrecognised critical option, a reserved block size,
// proxy options), as for datagrams.
func MessageFromOptions(code Code, token []byte, opts message.Options, payload []byte) (m *Message, reject Code) {
	m = NewMessage(code)
	if len(token) > 0 {
		m.Token = append([]byte(nil), token...)
	}
	if len(payload) > 0 {
		m.Payload = append([]byte(nil), payload...)
	}
	return m, convertOptions(opts, m)
}

// Options returns m's options in ascending id order, in memory of their own.
func (m *Message) Options() message.Options {
	var uints [40]byte
	opts := appendOptions(make(message.Options, 0, 16), &uints, m)
	for i := range opts {
		opts[i].Value = append([]byte(nil), opts[i].Value...)
	}
	return opts
}

// SliceBlock2 cuts a 2.xx answer that carries no Block2 into the block req asks for (RFC 7959
// §2.2), at most 16<<szx bytes; an answer that fits and was not asked for in blocks is returned
// as it is.
func SliceBlock2(req, resp *Message, szx uint8) *Message { return sliceBlock2(req, resp, szx) }

// DeviceName returns the device name cert carries in the field c.Name picks (CN, or the first
// URI, else DNS, subject alternative name).
func (c *X509Config) DeviceName(cert *x509.Certificate) (string, error) {
	x := *c
	if x.Name == "" {
		x.Name = CertNameCN
	}
	return x.name(cert)
}
