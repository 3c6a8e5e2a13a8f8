package transport

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestUDPInlineHandlerSkipsWorkers: on a plain UDP socket too, a request whose handler vouches
// that it is inline-safe is answered on the reading goroutine: with the only worker held by
// another device's request, the block is still answered (queued for a worker, it waited for
// the held one).
func TestUDPInlineHandlerSkipsWorkers(t *testing.T) {
	h := &inlineTestHandler{blocked: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers = 1
	ep := startEndpoint(t, h, cfg)
	defer close(h.release) // before the Endpoint stops (cleanups run after deferred calls)

	holder := newRawPeer(t)
	holder.send(ep.addr, datagram(t, typeCON, 1, req(GET, "/block", 1)))
	select {
	case <-h.blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("/block never reached the handler")
	}
	puller := newRawPeer(t)
	puller.send(ep.addr, datagram(t, typeCON, 2, req(GET, "/fw", 2)))
	b, _, err := puller.tryRecv(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer to the inline-safe request while the only worker is held: %v", err)
	}
	f, err := decode(b)
	if err != nil || f.typ != typeACK || f.mid != 2 || f.msg == nil || string(f.msg.Payload) != "block" {
		t.Fatalf("answer %+v (%v)", f, err)
	}
}

// slowInlineHandler vouches for every request; /slow waits for release.
type slowInlineHandler struct {
	calls   atomic.Int64
	slow    chan struct{} // closed when /slow runs
	release chan struct{}
}

func (h *slowInlineHandler) Inline(*Message) bool { return true }

func (h *slowInlineHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	n := h.calls.Add(1)
	if r.Path == "/slow" {
		close(h.slow)
		<-h.release
	}
	resp := NewMessage(Changed)
	resp.Payload = []byte{byte(n)}
	return resp
}

// TestUDPInlineSlowHandlerHoldsNoOtherDevice: an inline handler that waits (a storage read)
// holds only the reader running it; another reader goes on reading and answering other devices.
func TestUDPInlineSlowHandlerHoldsNoOtherDevice(t *testing.T) {
	h := &slowInlineHandler{slow: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers = 2
	ep := startEndpoint(t, h, cfg)
	defer close(h.release)

	slow := newRawPeer(t)
	slow.send(ep.addr, datagram(t, typeCON, 1, req(GET, "/slow", 1)))
	select {
	case <-h.slow:
	case <-time.After(20 * time.Second):
		t.Fatal("/slow never reached the handler")
	}
	other := newRawPeer(t)
	other.send(ep.addr, datagram(t, typeCON, 2, req(GET, "/fw", 2)))
	b, _, err := other.tryRecv(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer to another device while an inline handler waits: %v", err)
	}
	if f, err := decode(b); err != nil || f.typ != typeACK || f.mid != 2 {
		t.Fatalf("answer %+v (%v)", f, err)
	}
}

// TestUDPInlineDuplicatePOSTAnsweredFromCache: a non-idempotent request answered inline is
// answered again from the duplicate cache, never run twice, whichever reader reads the copy.
func TestUDPInlineDuplicatePOSTAnsweredFromCache(t *testing.T) {
	h := &slowInlineHandler{}
	ep := startEndpoint(t, h, testConfig())
	dev := newRawPeer(t)
	d := datagram(t, typeCON, 0x4242, req(POST, "/fw", 0xaa))
	var answers [][]byte
	for range 4 {
		dev.send(ep.addr, d)
		b, _ := dev.recv()
		answers = append(answers, b)
	}
	for _, b := range answers[1:] {
		if !bytes.Equal(b, answers[0]) {
			t.Fatalf("duplicate answered differently:\n% x\n% x", answers[0], b)
		}
	}
	if got := h.calls.Load(); got != 1 {
		t.Fatalf("handler ran %d times for one message id", got)
	}
	if got := ep.counter(t, "lwota_transport_duplicates_total"); got != 3 {
		t.Fatalf("duplicates = %v, want 3", got)
	}
}

// manySlowInlineHandler vouches for every request; a /slow/... request waits for release.
type manySlowInlineHandler struct {
	slow    chan struct{} // gets a value when a /slow request starts waiting
	release chan struct{}
}

func (h *manySlowInlineHandler) Inline(*Message) bool { return true }

func (h *manySlowInlineHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	if len(r.Path) > 5 && r.Path[:6] == "/slow/" {
		h.slow <- struct{}{}
		<-h.release
	}
	return NewMessage(Content)
}

// TestUDPInlineReaderAlwaysReads: however many inline handlers wait on storage at once (one per
// reader here, with workers to spare), one reader stays free, and another device is still
// answered. Before, every reader could be answering inline (up to Config.Workers), and with all
// of them waiting nobody read the socket.
func TestUDPInlineReaderAlwaysReads(t *testing.T) {
	h := &manySlowInlineHandler{slow: make(chan struct{}, plainReaders), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers = plainReaders + 2
	ep := startEndpoint(t, h, cfg)
	defer close(h.release)

	for i := range plainReaders {
		p := newRawPeer(t)
		p.send(ep.addr, datagram(t, typeCON, uint16(10+i), req(GET, "/slow/"+string(rune('a'+i)), byte(i))))
		select {
		case <-h.slow:
		case <-time.After(20 * time.Second):
			t.Fatalf("slow request %d never reached the handler", i)
		}
	}
	other := newRawPeer(t)
	other.send(ep.addr, datagram(t, typeCON, 2, req(GET, "/fw", 2)))
	b, _, err := other.tryRecv(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer while %d inline handlers wait: %v", plainReaders, err)
	}
	if f, err := decode(b); err != nil || f.typ != typeACK || f.mid != 2 {
		t.Fatalf("answer %+v (%v)", f, err)
	}
}
