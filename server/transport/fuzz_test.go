package transport

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// discardLink is a link that writes nowhere, so the fuzzer can drive the whole server path.
type discardLink struct{}

func (discardLink) readFrom([]byte) (int, netip.AddrPort, string, error) {
	return 0, netip.AddrPort{}, "", net.ErrClosed
}
func (discardLink) writeTo([]byte, netip.AddrPort) error { return nil }
func (discardLink) localAddr() net.Addr                  { return &net.UDPAddr{} }
func (discardLink) close() error                         { return nil }

// FuzzDecode feeds datagrams to the server's parse path: decode, then the whole dispatch
// (deduplication, Block1 reassembly, Block2 slicing, handler, response encoding). The seed
// corpus in testdata/fuzz/FuzzDecode holds datagrams captured from libcoap's client.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"\x40\x00\x12\x34",                                     // ping
		"\x42\x01\x12\x34\x01\x02\xb1\x33\x01\x30",             // GET /3/0
		"\x40\x01\x00\x01\xff",                                 // payload marker without payload
		"\x40\x01\x00\x01\xf0",                                 // option delta 15
		"\x49\x01\x00\x01",                                     // token length 9
		"\x41\x01\x00\x10\x05\xb1\x61\x21\x78",                 // unknown critical option
		"\x41\x02\x00\x01\x01\xd1\x0e\x08\xff0123456789abcdef", // Block1 0/M/16
		"\x41\x01\x00\x01\x01\xc1\x1a",                         // Block2 1/M/64
		"\x62\x45\x12\x34\x01\x02\xc0\xffhi",                   // ACK 2.05
		"\x52\x45\x00\x07\x01\x02\x61\x05\xff21.5",             // NON notification
		"\x40\x01\x00\x01\xd1\x14\xff",                         // Size1 with a truncated value
	} {
		f.Add([]byte(seed))
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MaxBodySize = 4096
	e, err := New(pc, UDP, HandlerFunc(func(_ context.Context, _ Peer, r *Message) *Message {
		resp := NewMessage(Content)
		resp.Payload = make([]byte, 3000) // sliced into blocks
		resp.LocationPath = r.Query
		return resp
	}), cfg, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	pc.Close()
	e.link = discardLink{}
	from := Peer{Addr: Addr{Network: UDP, AddrPort: netip.MustParseAddrPort("192.0.2.1:5683")}}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decode(data)
		if err == nil && fr.msg != nil {
			b, err := encode(nil, fr.typ, fr.mid, fr.msg)
			if err == nil {
				if _, err := decode(b); err != nil {
					t.Fatalf("re-decode of % x: %v", b, err)
				}
			}
		}
		e.handleDatagram(context.Background(), data, from)
	})
}
