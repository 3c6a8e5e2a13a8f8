package transport

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// poolHandler reports on ran the goroutine and path of each request it serves; /hold and
// /block wait for release. Every path but /block is inline-safe.
type poolHandler struct {
	ran     chan ranOn
	release chan struct{}
}

type ranOn struct {
	path string
	g    uint64
}

func (h *poolHandler) Inline(r *Message) bool { return r.Path != "/block" }

func (h *poolHandler) ServeCoAP(ctx context.Context, _ Peer, r *Message) *Message {
	h.ran <- ranOn{path: r.Path, g: goroutineID()}
	if r.Path == "/hold" || r.Path == "/block" {
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	}
	return NewMessage(Content)
}

// goroutineID is the calling goroutine's number, from its stack trace's first line.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// TestDTLSOverflowGoroutineReused: an inline-safe request that overflows on a record goroutine
// beyond its limit runs on a pooled goroutine, which waits for the next such request and runs
// it too (before: a new goroutine each, whose creation and stack growth cost 2.5-11% of the
// server's CPU at 1,000 DTLS devices); at most Config.QueueSize goroutines are pooled (beyond
// that a request still gets a goroutine of its own, at once); they end when idle, and with
// Serve (startEndpoint's leak check).
func TestDTLSOverflowGoroutineReused(t *testing.T) {
	h := &poolHandler{ran: make(chan ranOn, 16), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1 // one worker, a queue of one, one pooled goroutine
	te := startEndpoint(t, h, cfg)
	defer close(h.release) // before the Endpoint stops (cleanups run after deferred calls)
	peer := newRawPeer(t)
	waitServing(t, te)

	// deliver hands the request as a record goroutine does (dtls_direct.go).
	var mid uint16
	deliver := func(path string) {
		t.Helper()
		mid++
		b := datagram(t, typeCON, mid, req(GET, path))
		bp := te.buffer()
		n := copy(*bp, b)
		te.admitAndHandle(bp, n, peer.addr().AddrPort, "", overflowGoroutine)
	}
	ran := func(want string) ranOn {
		t.Helper()
		select {
		case r := <-h.ran:
			if r.path != want {
				t.Fatalf("ran %s, want %s", r.path, want)
			}
			return r
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never reached the handler", want)
			return ranOn{}
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (pooled %d, waiting %d)", what, te.ovf.pooled.Load(), waitingOverflowGoroutines())
			}
			time.Sleep(time.Millisecond)
		}
	}

	// The worker held, the queue full, the inline slot and the record goroutines' overflow
	// slot taken: the next inline-safe request overflows beyond them.
	deliver("/block")
	ran("/block")
	deliver("/block")
	waitFor("a full workers' queue", func() bool { return len(te.queue) == cap(te.queue) })
	te.inl.busy.Add(1)
	te.inl.overflowed.Add(1)
	defer te.inl.overflowed.Add(-1)
	defer te.inl.busy.Add(-1)

	deliver("/fw")
	first := ran("/fw")
	waitFor("a pooled goroutine waiting for the next request", func() bool { return waitingOverflowGoroutines() == 1 })
	deliver("/fw")
	if again := ran("/fw"); again.g != first.g {
		t.Fatalf("the second overflowing request ran on goroutine %d, not the pooled %d", again.g, first.g)
	}

	// The pool holds one goroutine (QueueSize): while it waits in a handler, the next request
	// gets a goroutine of its own, and does not wait for the pooled one.
	waitFor("the pooled goroutine waiting again", func() bool { return waitingOverflowGoroutines() == 1 })
	deliver("/hold")
	held := ran("/hold")
	deliver("/fw")
	if other := ran("/fw"); other.g == held.g {
		t.Fatalf("a request ran on the pooled goroutine %d while it was held", held.g)
	}
	if n := te.ovf.pooled.Load(); n != 1 {
		t.Fatalf("pooled goroutines %d, want 1 (Config.QueueSize)", n)
	}
}

// TestDTLSOverflowGoroutineEndsIdle: a pooled overflow goroutine ends once no request came for
// overflowIdle, while Serve still runs.
func TestDTLSOverflowGoroutineEndsIdle(t *testing.T) {
	h := &poolHandler{ran: make(chan ranOn, 16), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1
	te := startEndpoint(t, h, cfg)
	defer close(h.release)
	peer := newRawPeer(t)
	waitServing(t, te)
	b := datagram(t, typeCON, 1, req(GET, "/fw"))
	f, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	te.overflowGo(f, peer.addr().AddrPort, "")
	<-h.ran
	deadline := time.Now().Add(overflowIdle + 20*time.Second)
	for te.ovf.pooled.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a pooled overflow goroutine still there %v after its request", overflowIdle+20*time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitServing waits until te's Serve has started: a record goroutine delivers only then.
func waitServing(t *testing.T, te *testEndpoint) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for te.inl.ctx.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Serve never started")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitingOverflowGoroutines counts the pooled overflow goroutines parked in their wait for the
// next request (in the runtime's goroutine dump: in overflowWorker, blocked in select), so
// that a request handed over now finds one. Tests that use it run one Endpoint at a time.
func waitingOverflowGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, ").overflowWorker(") {
			n++
		}
	}
	return n
}
