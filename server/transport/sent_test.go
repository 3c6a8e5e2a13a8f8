package transport

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestWire_SentRunsAfterTheAnswerIsWritten: a response's Sent hook runs once its datagram is on
// the wire (the Bootstrap Server starts its requests from it, so that a device sees the 2.04 to
// its Bootstrap-Request first). The hook reads the peer's socket: the answer must already be
// there.
func TestWire_SentRunsAfterTheAnswerIsWritten(t *testing.T) {
	dev := newRawPeer(t)
	seen := make(chan []byte, 1)
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message {
		resp := NewMessage(Changed)
		resp.Sent = func() {
			b, _, err := dev.tryRecv(50 * time.Millisecond)
			if err != nil {
				b = nil
			}
			seen <- b
		}
		return resp
	}}
	ep := startEndpoint(t, h, wireConfig())
	dev.send(ep.addr, unhex(t, "42 02 0a0b 0102 b2 6273")) // CON POST /bs
	select {
	case b := <-seen:
		if want := unhex(t, "62 44 0a0b 0102"); !bytes.Equal(b, want) {
			t.Fatalf("when Sent ran the peer had % x, want the ACK 2.04 % x", b, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sent never ran")
	}
}
