package transport

import (
	"context"
	"strings"
	"testing"
	"time"
)

// spillHandler vouches for every request but /block; a /hold/... request waits for release, and
// /block holds a worker until releaseBlock is closed.
type spillHandler struct {
	held, blocked         chan string // a /hold/... or /block request started waiting
	release, releaseBlock chan struct{}
}

func newSpillHandler() *spillHandler {
	return &spillHandler{held: make(chan string, 4), blocked: make(chan string, 1),
		release: make(chan struct{}), releaseBlock: make(chan struct{})}
}

func (h *spillHandler) Inline(r *Message) bool { return r.Path != "/block" }

func (h *spillHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	switch {
	case strings.HasPrefix(r.Path, "/hold/"):
		h.held <- r.Path
		<-h.release
	case r.Path == "/block":
		h.blocked <- r.Path
		<-h.releaseBlock
	}
	resp := NewMessage(Content)
	resp.Payload = []byte(r.Path)
	return resp
}

// fillUDPEndpoint starts an Endpoint with one worker and a queue of one, and takes its only
// inline slot (/hold/a), its worker (/block) and its queue (an inline-safe /fw that found the
// slot taken): the state of a server with more devices pulling at once than its queue holds.
func fillUDPEndpoint(t *testing.T, h *spillHandler) *testEndpoint {
	t.Helper()
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1 // one inline slot: min(plainReaders-1, Workers)
	ep := startEndpoint(t, h, cfg)
	wait := func(what string, ch chan string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never reached the handler", what)
		}
	}
	newRawPeer(t).send(ep.addr, datagram(t, typeCON, 1, req(GET, "/hold/a", 1)))
	wait("/hold/a", h.held)
	newRawPeer(t).send(ep.addr, datagram(t, typeCON, 2, req(GET, "/block", 2)))
	wait("/block", h.blocked)
	newRawPeer(t).send(ep.addr, datagram(t, typeCON, 3, req(GET, "/fw", 3)))
	deadline := time.Now().Add(20 * time.Second)
	for len(ep.queue) < cap(ep.queue) {
		if time.Now().After(deadline) {
			t.Fatal("the third request never reached the workers' queue")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ep
}

// waitSpilledOrDropped waits until the reader has dealt with a request that found the inline
// slot and the queue full: spilled (for the workers) or dropped as queue_full.
func waitSpilledOrDropped(t *testing.T, ep *testEndpoint, spilled int, dropped float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(ep.spilled) < spilled || ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "queue_full") < dropped {
		if time.Now().After(deadline) {
			t.Fatalf("spilled %d (want %d), queue_full drops %v (want %v)", len(ep.spilled), spilled,
				ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "queue_full"), dropped)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUDPInlineSpillAnswered: on a plain UDP socket, an inline-safe request that finds the
// inline readers at their limit and the workers' queue full waits in the spill queue for a
// worker, and is answered once one is free, not dropped. Dropped, it locked its device out: at
// 1,000 devices pulling firmware (more than the queue holds) the devices being answered kept the
// queue full, and a dropped device's retransmissions found it full again (udp_inline.go).
func TestUDPInlineSpillAnswered(t *testing.T) {
	h := newSpillHandler()
	ep := fillUDPEndpoint(t, h)
	defer close(h.release) // before the Endpoint stops (cleanups run after deferred calls)
	released := false
	defer func() {
		if !released {
			close(h.releaseBlock)
		}
	}()

	dev := newRawPeer(t)
	dev.send(ep.addr, datagram(t, typeCON, 4, req(GET, "/fw", 4)))
	waitSpilledOrDropped(t, ep, 1, 0) // the reader has it: spilled, or (before) dropped
	close(h.releaseBlock)             // the worker is free
	released = true
	b, _, err := dev.tryRecv(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer to an inline-safe request that found the inline slot and the queue full (queue_full drops %v): %v",
			ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "queue_full"), err)
	}
	if f, err := decode(b); err != nil || f.typ != typeACK || f.mid != 4 || string(f.msg.Payload) != "/fw" {
		t.Fatalf("answer %+v (%v)", f, err)
	}
	if got := ep.counter(t, "lwota_transport_inline_overflow_total"); got != 1 {
		t.Fatalf("inline_overflow_total = %v, want 1", got)
	}
	if got := ep.counter(t, "lwota_transport_datagrams_dropped_total", "reason", "queue_full"); got != 0 {
		t.Fatalf("queue_full drops = %v, want 0", got)
	}
}

// TestUDPInlineSpillBounded: the spill queue holds Config.QueueSize requests; the next
// inline-safe request that finds no room there either is dropped and counted, so a flood holds
// no more than the queue's worth of decoded requests again.
func TestUDPInlineSpillBounded(t *testing.T) {
	h := newSpillHandler()
	ep := fillUDPEndpoint(t, h)
	defer close(h.releaseBlock)
	defer close(h.release)

	newRawPeer(t).send(ep.addr, datagram(t, typeCON, 4, req(GET, "/fw", 4)))
	waitSpilledOrDropped(t, ep, 1, 0)
	newRawPeer(t).send(ep.addr, datagram(t, typeCON, 5, req(GET, "/fw", 5)))
	waitSpilledOrDropped(t, ep, 1, 1)
}
