package transport

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestBlock1RetransmittedBlockAnsweredFromCache: a block of a Block1 transfer changes the
// reassembly state, so a retransmitted copy must get the answer its original got, never be
// reassembled again, whatever the request's method. A PUT is idempotent and its answers were
// not kept: under load (a client's ACK timeout shorter than the server's delay) a copy of the
// last block, handled after the original had completed the transfer, found no transfer and was
// answered 4.08 Request Entity Incomplete, which the client took as the answer to its upload; a
// late copy of an earlier block restarted the transfer, and the next block then got 4.08.
func TestBlock1RetransmittedBlockAnsweredFromCache(t *testing.T) {
	body := payloadOf(16*2 + 5)
	blocks := func(code Code) []*Message {
		var out []*Message
		for i := 0; i*16 < len(body); i++ {
			end := min((i+1)*16, len(body))
			r := block1Req(byte(i+1), uint32(i), end < len(body), 0, body[i*16:end])
			r.Code = code
			out = append(out, r)
		}
		return out
	}
	for _, c := range []struct {
		name string
		code Code
		// resend is the block sent a second time right after block resendAfter was answered.
		resend, resendAfter int
	}{
		{"PUT, the last block again", PUT, 2, 2},
		{"PUT, the first block after the second", PUT, 0, 1},
		{"PUT, the second block after the second", PUT, 1, 1},
		{"POST, the last block again", POST, 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got atomic.Pointer[[]byte]
			h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
				body := bytes.Clone(r.Payload)
				got.Store(&body)
				return NewMessage(Changed)
			}}
			ep := startEndpoint(t, h, wireConfig())
			dev := newRawPeer(t)
			sent := map[int][]byte{}     // each block's datagram
			answered := map[int][]byte{} // and the answer it got
			reqs := blocks(c.code)
			for i, r := range reqs {
				sent[i] = datagram(t, typeCON, uint16(i+1), r)
				dev.send(ep.addr, sent[i])
				answered[i], _ = dev.recv()
				if i != c.resendAfter {
					continue
				}
				dev.send(ep.addr, sent[c.resend])
				again, _ := dev.recv()
				if !bytes.Equal(again, answered[c.resend]) {
					f, _ := decode(again)
					t.Fatalf("block %d sent again: answered %v (% x), want its first answer % x",
						c.resend, f.msg.Code, again, answered[c.resend])
				}
			}
			last, err := decode(answered[len(reqs)-1])
			if err != nil || last.msg.Code != Changed {
				t.Fatalf("the last block: %+v (%v)", last.msg, err)
			}
			if p := got.Load(); h.calls.Load() != 1 || p == nil || !bytes.Equal(*p, body) {
				t.Fatalf("handler ran %d times, want once with the %d-byte body", h.calls.Load(), len(body))
			}
			if _, _, err := dev.tryRecv(100 * time.Millisecond); err == nil {
				t.Fatal("an answer more than one per datagram")
			}
		})
	}
}
