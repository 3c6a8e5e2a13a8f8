package transport

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// overflowHandler answers /fw at once and holds /hold until releaseHold is closed (both
// inline-safe), and holds a worker on /block until releaseBlock is closed.
type overflowHandler struct {
	held, blocked             chan struct{} // closed when /hold, /block run
	releaseHold, releaseBlock chan struct{}
}

func (h *overflowHandler) Inline(r *Message) bool { return r.Path == "/fw" || r.Path == "/hold" }

func (h *overflowHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	switch r.Path {
	case "/hold":
		close(h.held)
		<-h.releaseHold
	case "/block":
		close(h.blocked)
		<-h.releaseBlock
	}
	resp := NewMessage(Content)
	resp.Payload = []byte(r.Path)
	return resp
}

// TestDTLSInlineOverflowAnswered: an inline-safe request that finds the inline handlers at their
// limit and the workers' queue full is not dropped (before session 8: dropped as queue_full,
// and its device waited a retransmission timeout: at 1,000 devices pulling firmware over DTLS
// about one block in twenty). The socket reader that read it spills it for the workers
// (dtls_direct.go), which answer it as soon as one is free.
func TestDTLSInlineOverflowAnswered(t *testing.T) {
	h := &overflowHandler{held: make(chan struct{}), blocked: make(chan struct{}),
		releaseHold: make(chan struct{}), releaseBlock: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1
	keys := pskMap{"dev1": "key-one-1", "dev2": "key-two-2", "dev3": "key-three-3", "dev4": "key-four-4"}
	te, l := startDTLSWith(t, h, cfg, DTLSConfig{PSK: keys})
	var unblock sync.Once
	unblockWorker := func() { unblock.Do(func() { close(h.releaseBlock) }) }
	defer unblockWorker() // before the Endpoint stops (cleanups run after deferred calls)
	defer close(h.releaseHold)

	send := func(identity string, mid uint16, path string) func() (frame, error) {
		t.Helper()
		c, err := dialDTLS(t, te.addr, identity, keys[identity], nil)
		if err != nil {
			t.Fatalf("%s handshake: %v", identity, err)
		}
		t.Cleanup(func() { c.Close() })
		// A record sent as the handshake ends may take the session's own path, where an
		// overflow runs in place: this test is about the socket's readers.
		waitReaderReady(t, te, l, identity)
		if _, err := c.Write(datagram(t, typeCON, mid, req(GET, path))); err != nil {
			t.Fatal(err)
		}
		return func() (frame, error) { return readFrameWithin(t, c, 10*time.Second) }
	}
	waitFor := func(what string, ch chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never reached the handler (%s)", what, dtlsEngineState(te, l))
		}
	}

	send("dev1", 1, "/hold") // takes the only inline slot
	waitFor("/hold", h.held)
	send("dev2", 2, "/block") // takes the only worker
	waitFor("/block", h.blocked)
	send("dev3", 3, "/fw") // inline slot taken: queued, for the held worker
	deadline := time.Now().Add(20 * time.Second)
	for len(te.queue) < cap(te.queue) {
		if time.Now().After(deadline) {
			t.Fatalf("dev3's request never reached the workers' queue (%s)", dtlsEngineState(te, l))
		}
		time.Sleep(5 * time.Millisecond)
	}

	answer := send("dev4", 4, "/fw") // inline slot taken, queue full: spilled
	deadline = time.Now().Add(20 * time.Second)
	for len(te.spilled) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("dev4's request was not spilled (%s)", dtlsEngineState(te, l))
		}
		time.Sleep(5 * time.Millisecond)
	}
	unblockWorker() // the worker answers dev3's, then dev4's
	f, err := answer()
	if err != nil {
		t.Fatalf("no answer to an inline-safe request while the inline slot and the queue were full: %v (%s)", err, dtlsEngineState(te, l))
	}
	if f.typ != typeACK || f.mid != 4 || framePayload(f) != "/fw" {
		t.Fatalf("answer %+v (payload %q)", f, framePayload(f))
	}
	if got := testutil.ToFloat64(te.m.dropQueueFull); got != 0 {
		t.Fatalf("queue_full drops = %v, want 0", got)
	}
}
