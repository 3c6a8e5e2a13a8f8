package transport

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
)

// Wire tests: raw datagrams in, exact bytes out. Workers is 1 so that datagrams are handled
// in order and "no answer" can be shown by the next answer.

func wireConfig() Config {
	c := testConfig()
	c.Workers = 1
	return c
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWire_RFC7252_5_2_1_PiggybackedResponse(t *testing.T) {
	var saw atomic.Pointer[Message]
	h := &countingHandler{fn: func(_ context.Context, from Peer, r *Message) *Message {
		saw.Store(r)
		resp := NewMessage(Content)
		resp.ContentFormat = 0
		resp.Payload = []byte("hello")
		return resp
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	// CON GET /3/0/1, token 01 02, mid 0x1234
	dev.send(ep.addr, unhex(t, "42 01 1234 0102 b1 33 01 30 01 31"))
	got, _ := dev.recv()
	want := unhex(t, "62 45 1234 0102 c0 ff 68656c6c6f") // ACK 2.05, CF 0, "hello"
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	if seen := saw.Load(); seen.Path != "/3/0/1" || seen.Code != GET || !bytes.Equal(seen.Token, []byte{1, 2}) {
		t.Fatalf("handler saw %+v", saw.Load())
	}
}

func TestWire_NonRequestGetsNonResponse(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	dev.send(ep.addr, unhex(t, "51 01 0042 07 b1 33")) // NON GET /3, token 07
	f := dev.recvFrame()
	if f.typ != typeNON || f.msg.Code != Content || !bytes.Equal(f.msg.Token, []byte{7}) {
		t.Fatalf("got type %d %+v", f.typ, f.msg)
	}
}

func TestWire_NilResponseIsEmptyACK(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return nil }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	dev.send(ep.addr, unhex(t, "41 02 0a0b 09 b2 7264")) // CON POST /rd
	got, _ := dev.recv()
	if want := unhex(t, "60 00 0a0b"); !bytes.Equal(got, want) {
		t.Fatalf("got % x want % x", got, want)
	}
}

func TestWire_RFC7252_4_5_DuplicatePOSTAnsweredFromCache(t *testing.T) {
	n := 0
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		n++
		resp := NewMessage(Created)
		resp.LocationPath = []string{"rd", strings.Repeat("x", n)}
		return resp
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	reg := req(POST, "/rd", 0xaa, 0xbb)
	reg.Query = []string{"ep=dev1", "lt=300"}
	reg.ContentFormat = 40
	reg.Payload = []byte("</3/0>,</5/0>")
	d := datagram(t, typeCON, 0x4242, reg)
	dev.send(ep.addr, d)
	first, _ := dev.recv()
	dev.send(ep.addr, d)
	second, _ := dev.recv()
	if !bytes.Equal(first, second) {
		t.Fatalf("duplicate answered differently:\n% x\n% x", first, second)
	}
	if got := h.calls.Load(); got != 1 {
		t.Fatalf("handler ran %d times", got)
	}
	if got := ep.counter(t, "lwota_transport_duplicates_total"); got != 1 {
		t.Fatalf("duplicates = %v", got)
	}
	// A new message id is a new request.
	dev.send(ep.addr, datagram(t, typeCON, 0x4243, reg))
	third := dev.recvFrame()
	if h.calls.Load() != 2 || third.msg.LocationPath[1] != "xx" {
		t.Fatalf("new MID not re-processed: %+v", third.msg)
	}
}

func TestWire_RFC7252_4_5_DuplicateWhileHandlingIsDropped(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message {
		started <- struct{}{}
		<-release
		return NewMessage(Changed)
	}}
	cfg := testConfig()
	cfg.Workers = 2
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)
	d := datagram(t, typeCON, 7, req(POST, "/1/0/4", 1))
	dev.send(ep.addr, d)
	<-started
	dev.send(ep.addr, d)
	eventually(t, "duplicate counted", func() bool { return ep.counter(t, "lwota_transport_duplicates_total") == 1 })
	close(release)
	first := dev.recvFrame()
	if first.msg.Code != Changed || first.mid != 7 {
		t.Fatalf("got %+v", first)
	}
	dev.send(ep.addr, d)
	again := dev.recvFrame()
	if again.msg.Code != Changed || h.calls.Load() != 1 {
		t.Fatalf("calls=%d again=%+v", h.calls.Load(), again.msg)
	}
}

func TestWire_RFC7252_4_5_DuplicateGETIsReprocessed(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	d := datagram(t, typeCON, 99, req(GET, "/5/0/3", 1))
	dev.send(ep.addr, d)
	a, _ := dev.recv()
	dev.send(ep.addr, d)
	b, _ := dev.recv()
	if !bytes.Equal(a, b) || h.calls.Load() != 2 {
		t.Fatalf("calls=%d", h.calls.Load())
	}
}

func TestWire_MalformedAndOversizeDropped(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
	cfg := wireConfig()
	cfg.MaxMessageSize = 200
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)
	for _, bad := range []string{
		"40",                   // truncated header
		"80 01 0001",           // version 2
		"49 01 0001 0102",      // token length 9
		"42 01 0001 01",        // token truncated
		"40 01 0001 ff",        // payload marker without payload
		"40 01 0001 f0",        // option delta 15
		"40 01 0001 d1",        // extended delta truncated
		"40 00 0001 ff 01",     // empty message with payload
		"40 e1 0001",           // reserved class 7
		"40 01 0001 b5 616263", // option longer than the datagram
	} {
		dev.send(ep.addr, unhex(t, bad))
	}
	dev.send(ep.addr, append(unhex(t, "60 45 0002 ff"), make([]byte, 300)...)) // oversize ACK: nothing to answer
	dev.send(ep.addr, unhex(t, "40 00 0003"))                                  // ping
	got, _ := dev.recv()
	if want := unhex(t, "70 00 0003"); !bytes.Equal(got, want) {
		t.Fatalf("first answer % x, want the ping's RST % x", got, want)
	}
	if got := ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "malformed"); got != 10 {
		t.Fatalf("malformed = %v", got)
	}
	if got := ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "oversize"); got != 1 {
		t.Fatalf("oversize = %v", got)
	}
	if h.calls.Load() != 0 {
		t.Fatal("handler ran")
	}
}

func TestWire_RFC7252_4_3_PingGetsRST(t *testing.T) {
	ep := startEndpoint(t, nil, wireConfig())
	dev := newRawPeer(t)
	dev.send(ep.addr, unhex(t, "40 00 beef"))
	got, _ := dev.recv()
	if want := unhex(t, "70 00 beef"); !bytes.Equal(got, want) {
		t.Fatalf("got % x want % x", got, want)
	}
}

func TestWire_RFC7252_5_4_1_UnknownCriticalOption(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	cases := []struct {
		name string
		in   string
		want string
	}{
		// Uri-Path "a" then option 13 (critical, unknown): 4.02
		{"unknown critical", "41 01 0010 05 b1 61 21 78", "61 82 0010 05"},
		// Unknown elective option 16 is ignored: the handler answers 2.05
		{"unknown elective", "41 01 0011 05 b1 61 51 78", "61 45 0011 05"},
		// Block2 with 4 bytes (too long for a critical option): 4.02
		{"bad length critical", "41 01 0012 05 b1 61 c4 00000000", "61 82 0012 05"},
		// Block2 twice: 4.02 (§5.4.5)
		{"repeated critical", "41 01 0013 05 b1 61 c1 02 01 02", "61 82 0013 05"},
		// Block2 SZX 7: 4.00 (RFC 7959 §2.2)
		{"reserved szx", "41 01 0014 05 b1 61 c1 07", "61 80 0014 05"},
		// Proxy-Uri: 5.05
		{"proxy", "41 01 0015 05 d1 16 78", "61 a5 0015 05"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev.send(ep.addr, unhex(t, tc.in))
			got, _ := dev.recv()
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x want % x", got, want)
			}
		})
	}
	if h.calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", h.calls.Load())
	}
}

func payloadOf(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

func TestWire_RFC7959_2_4_Block2Slicing(t *testing.T) {
	body := payloadOf(200)
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message {
		r := NewMessage(Content)
		r.ContentFormat = 42
		r.ETag = []byte{0xe1}
		r.Payload = body
		return r
	}}
	cfg := wireConfig()
	cfg.BlockSize = 128
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)

	// No Block2 in the request: block 0 of the server's size (128).
	dev.send(ep.addr, datagram(t, typeCON, 1, req(GET, "/fw", 1)))
	f := dev.recvFrame()
	if f.msg.Block2 != (Block{Set: true, Num: 0, More: true, SZX: 3}) || !bytes.Equal(f.msg.Payload, body[:128]) ||
		!bytes.Equal(f.msg.ETag, []byte{0xe1}) || f.msg.ContentFormat != 42 {
		t.Fatalf("block 0: %+v", f.msg)
	}
	// Block 1 of 64 bytes, exact bytes.
	r := req(GET, "/fw", 2)
	r.Block2 = Block{Set: true, Num: 1, SZX: 2}
	dev.send(ep.addr, datagram(t, typeCON, 2, r))
	got, _ := dev.recv()
	want := append(unhex(t, "61 45 0002 02 41 e1 81 2a b1 1a ff"), body[64:128]...) // ETag, CF 42, Block2 1/M/64
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	// The last block: 3 of 64 = bytes 192..200, no More.
	r.Block2 = Block{Set: true, Num: 3, SZX: 2}
	r.Token = []byte{3}
	dev.send(ep.addr, datagram(t, typeCON, 3, r))
	f = dev.recvFrame()
	if f.msg.Block2 != (Block{Set: true, Num: 3, SZX: 2}) || !bytes.Equal(f.msg.Payload, body[192:]) {
		t.Fatalf("last block: %+v", f.msg)
	}
	// Beyond the end: 4.02.
	r.Block2 = Block{Set: true, Num: 4, SZX: 2}
	dev.send(ep.addr, datagram(t, typeCON, 4, r))
	if f = dev.recvFrame(); f.msg.Code != BadOption {
		t.Fatalf("beyond end: %v", f.msg.Code)
	}
	if h.calls.Load() != 4 {
		t.Fatalf("handler ran %d times, want once per block request", h.calls.Load())
	}
}

func TestWire_Block2FromHandlerSentAsIs(t *testing.T) {
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		resp := NewMessage(Content)
		resp.Block2 = Block{Set: true, Num: r.Block2.Num, More: true, SZX: 0}
		resp.Payload = payloadOf(16)
		return resp
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	r := req(GET, "/fw", 1)
	r.Block2 = Block{Set: true, Num: 5, SZX: 6}
	dev.send(ep.addr, datagram(t, typeCON, 1, r))
	f := dev.recvFrame()
	if f.msg.Block2 != (Block{Set: true, Num: 5, More: true, SZX: 0}) || len(f.msg.Payload) != 16 {
		t.Fatalf("got %+v", f.msg)
	}
}

func block1Req(token byte, num uint32, more bool, szx uint8, payload []byte) *Message {
	r := req(POST, "/5/0/0", token)
	r.Query = []string{"x=1"}
	r.Block1 = Block{Set: true, Num: num, More: more, SZX: szx}
	r.Payload = payload
	return r
}

func TestWire_RFC7959_2_5_Block1ReassemblyNewTokenPerBlock(t *testing.T) {
	body := payloadOf(16*2 + 5)
	var saw atomic.Pointer[Message]
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		saw.Store(r)
		return NewMessage(Changed)
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	for i, want := range []string{"61 5f 0001 01 d1 0e 08", "61 5f 0002 02 d1 0e 18", "61 44 0003 03 d1 0e 20"} {
		end := min((i+1)*16, len(body))
		r := block1Req(byte(i+1), uint32(i), end < len(body), 0, body[i*16:end])
		dev.send(ep.addr, datagram(t, typeCON, uint16(i+1), r))
		got, _ := dev.recv()
		if w := unhex(t, want); !bytes.Equal(got, w) {
			t.Fatalf("block %d: got % x want % x", i, got, w)
		}
	}
	if seen := saw.Load(); h.calls.Load() != 1 || !bytes.Equal(seen.Payload, body) || seen.Block1.Set || seen.Path != "/5/0/0" {
		t.Fatalf("handler: calls=%d saw %+v", h.calls.Load(), saw.Load())
	}
}

func TestWire_RFC7959_2_9_2_OutOfOrderBlockIs408(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Changed) }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	dev.send(ep.addr, datagram(t, typeCON, 1, block1Req(1, 0, true, 0, payloadOf(16))))
	if f := dev.recvFrame(); f.msg.Code != Continue {
		t.Fatalf("block 0: %v", f.msg.Code)
	}
	dev.send(ep.addr, datagram(t, typeCON, 2, block1Req(2, 2, true, 0, payloadOf(16))))
	got, _ := dev.recv()
	if want := unhex(t, "61 88 0002 02"); !bytes.Equal(got, want) {
		t.Fatalf("got % x want % x", got, want)
	}
	// A continuation without a start is incomplete too.
	dev.send(ep.addr, datagram(t, typeCON, 3, block1Req(3, 1, false, 0, payloadOf(3))))
	if f := dev.recvFrame(); f.msg.Code != RequestEntityIncomplete {
		t.Fatalf("orphan block: %v", f.msg.Code)
	}
	if h.calls.Load() != 0 {
		t.Fatal("handler ran")
	}
}

func TestWire_RFC7959_2_9_3_TooLargeIs413(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Changed) }}
	cfg := wireConfig()
	cfg.MaxBodySize = 40
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)
	// Announced with Size1.
	r := block1Req(1, 0, true, 0, payloadOf(16))
	r.Size1 = 1000
	dev.send(ep.addr, datagram(t, typeCON, 1, r))
	got, _ := dev.recv()
	if want := unhex(t, "61 8d 0001 01 d0 0e d1 14 28"); !bytes.Equal(got, want) { // 4.13, Block1 0/0/16 (zero-length uint), Size1 40
		t.Fatalf("got % x want % x", got, want)
	}
	// Discovered while reassembling.
	for i := range 3 {
		dev.send(ep.addr, datagram(t, typeCON, uint16(10+i), block1Req(byte(10+i), uint32(i), true, 0, payloadOf(16))))
		f := dev.recvFrame()
		want := Continue
		if i == 2 {
			want = RequestEntityTooLarge
		}
		if f.msg.Code != want || (i == 2 && f.msg.Size1 != 40) {
			t.Fatalf("block %d: %+v", i, f.msg)
		}
	}
	if h.calls.Load() != 0 {
		t.Fatal("handler ran")
	}
}

func TestWire_Block1AsksForSmallerBlocks(t *testing.T) {
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message { return NewMessage(Changed) }}
	cfg := wireConfig()
	cfg.BlockSize = 32
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)
	dev.send(ep.addr, datagram(t, typeCON, 1, block1Req(1, 0, true, 2, payloadOf(64))))
	if f := dev.recvFrame(); f.msg.Block1 != (Block{Set: true, Num: 0, More: true, SZX: 1}) {
		t.Fatalf("got %+v", f.msg.Block1)
	}
	// Next block at offset 64 in 32-byte blocks is number 2.
	dev.send(ep.addr, datagram(t, typeCON, 2, block1Req(2, 2, false, 1, payloadOf(10))))
	if f := dev.recvFrame(); f.msg.Code != Changed || f.msg.Block1 != (Block{Set: true, Num: 2, SZX: 1}) {
		t.Fatalf("final: %+v", f.msg)
	}
}

func TestWire_UnknownCONResponseIsReset_DuplicateReACKed(t *testing.T) {
	ep := startEndpoint(t, nil, wireConfig())
	dev := newRawPeer(t)
	notif := NewMessage(Content)
	notif.Token = []byte{1, 2, 3, 4}
	notif.Observe = 5
	d := datagram(t, typeCON, 0x77, notif)
	dev.send(ep.addr, d)
	got, _ := dev.recv()
	if want := unhex(t, "70 00 0077"); !bytes.Equal(got, want) {
		t.Fatalf("got % x want RST", got)
	}
	// Now with a listener: ACK, and a duplicate is ACKed again without a second delivery.
	var calls atomic.Int64
	stop := ep.Listen([]byte{9}, func(Peer, *Message) { calls.Add(1) })
	defer stop()
	notif.Token = []byte{9}
	d = datagram(t, typeCON, 0x78, notif)
	dev.send(ep.addr, d)
	dev.send(ep.addr, d)
	for range 2 {
		got, _ = dev.recv()
		if want := unhex(t, "60 00 0078"); !bytes.Equal(got, want) {
			t.Fatalf("got % x want ACK", got)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("listener ran %d times", calls.Load())
	}
	// Unmatched ACK and RST are ignored: the next answer is the ping's.
	dev.send(ep.addr, unhex(t, "60 00 0999"))
	dev.send(ep.addr, unhex(t, "70 00 0998"))
	dev.send(ep.addr, unhex(t, "62 45 0997 0102"))
	dev.send(ep.addr, unhex(t, "40 00 0001"))
	if got, _ = dev.recv(); !bytes.Equal(got, unhex(t, "70 00 0001")) {
		t.Fatalf("got % x", got)
	}
}
