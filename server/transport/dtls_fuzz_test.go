package transport

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzDTLSDatagram feeds datagrams from one address to the DTLS link's demultiplexer: the
// ClientHello and connection-id classification, the limits, and then pion's record and
// handshake parsing in the session the first ClientHello starts. Nothing may panic; the
// Endpoint closes cleanly afterwards.
func FuzzDTLSDatagram(f *testing.F) {
	for _, seed := range [][]byte{
		clientHello(nil, nil),
		clientHello([]byte{1, 2, 3}, make([]byte, 20)),
		clientHello(nil, nil)[:30],
		{22, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0},                         // handshake record of epoch 1, empty
		{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4},             // application data
		{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1}, // tls12_cid
		{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 1, 0},                   // alert
	} {
		f.Add(seed)
	}
	_, link := startDTLS(f, nil, DTLSConfig{HandshakeTimeout: 200 * time.Millisecond, ConnectionID: true, HelloVerify: HelloVerifyPion})
	from := netip.MustParseAddrPort("127.0.0.1:9") // the discard port: answers go nowhere
	f.Fuzz(func(t *testing.T, p []byte) {
		link.dispatch(p, from)
	})
}
