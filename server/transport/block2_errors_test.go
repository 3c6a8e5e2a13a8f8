package transport

import (
	"bytes"
	"context"
	"testing"
)

// TestWire_RFC7959_2_2_Block2ErrorsPassThrough: only 2.xx answers are cut into blocks. An error
// answer to a request for block N > 0 reaches the client as the handler gave it (5.03 with
// Max-Age, 4.04 with its diagnostic), not as 4.02 for a block past the end; a block past the
// end of a real representation is still 4.02.
func TestWire_RFC7959_2_2_Block2ErrorsPassThrough(t *testing.T) {
	body := payloadOf(300)
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		switch r.Path {
		case "/busy":
			m := NewMessage(ServiceUnavailable)
			m.MaxAge = 30
			m.Payload = []byte("later")
			return m
		case "/gone":
			m := NewMessage(NotFound)
			m.Payload = []byte("expired")
			return m
		case "/denied":
			return NewMessage(Forbidden)
		}
		m := NewMessage(Content)
		m.Payload = body
		return m
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	answer := func(code Code, maxAge uint32, payload []byte, b2 Block) *Message {
		m := NewMessage(code)
		m.MaxAge, m.Payload, m.Block2 = maxAge, payload, b2
		return m
	}
	for i, tc := range []struct {
		name string
		path string
		num  uint32
		want *Message
	}{
		{"5.03 at block 3", "/busy", 3, answer(ServiceUnavailable, 30, []byte("later"), Block{})},
		{"4.04 at block 3", "/gone", 3, answer(NotFound, 0, []byte("expired"), Block{})},
		{"4.03 at block 1", "/denied", 1, answer(Forbidden, 0, nil, Block{})},
		{"5.03 at block 0", "/busy", 0, answer(ServiceUnavailable, 30, []byte("later"), Block{})},
		{"2.05 block 3 sliced", "/big", 3, answer(Content, 0, body[192:256], Block{Set: true, Num: 3, More: true, SZX: 2})},
		{"2.05 past the end", "/big", 10, answer(BadOption, 0, nil, Block{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mid := uint16(0x0300 + i)
			r := req(GET, tc.path, byte(i+1))
			r.Block2 = Block{Set: true, Num: tc.num, SZX: 2}
			dev.send(ep.addr, datagram(t, typeCON, mid, r))
			got, _ := dev.recv()
			tc.want.Token = []byte{byte(i + 1)}
			want, err := encode(nil, typeACK, mid, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				f, _ := decode(got)
				t.Fatalf("got % x (%v)\nwant % x", got, f.msg.Code, want)
			}
		})
	}
}
