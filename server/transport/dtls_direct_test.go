package transport

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTakeDirect: a socket reader hands pion itself only an application data record (content
// type 23) of an established session that is awake and has its reader handler; everything else
// takes the session's path (takeDirect reports false and counts nothing). A record taken keeps
// its session from falling asleep until the reader is done with it (quiet, dtls_idle.go).
func TestTakeDirect(t *testing.T) {
	appData := append([]byte{23, 0xfe, 0xfd}, make([]byte, 30)...)
	for _, tc := range []struct {
		name    string
		record  []byte
		session func(*dtlsSession)
		want    bool
	}{
		{name: "application data", record: appData, want: true},
		{name: "connection id record", record: append([]byte{25}, appData[1:]...)},
		{name: "handshake", record: append([]byte{22}, appData[1:]...)},
		{name: "alert", record: append([]byte{21}, appData[1:]...)},
		{name: "short", record: appData[:12]},
		{name: "handshaking", record: appData, session: func(s *dtlsSession) { s.established = false }},
		{name: "asleep", record: appData, session: func(s *dtlsSession) { s.conn = nil }},
		{name: "no reader handler yet", record: appData, session: func(s *dtlsSession) { s.fromReader = nil }},
		{name: "falling asleep", record: appData, session: func(s *dtlsSession) { s.idle.falling = true }},
		{name: "waking", record: appData, session: func(s *dtlsSession) { s.idle.settling = make(chan struct{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &dtlsLink{}
			s := &dtlsSession{established: true, conn: &dtls.Conn{}, fromReader: func([]byte) {}}
			s.vc = newSessionConn(l, s)
			s.vc.state.Store(rxIdle) // pion waits for its next record
			if tc.session != nil {
				tc.session(s)
			}
			r, got := l.takeDirect(s, tc.record)
			if got != tc.want {
				t.Fatalf("takeDirect = %v, want %v", got, tc.want)
			}
			if got := s.vc.direct.Load() == 0; got == tc.want {
				t.Fatalf("records counted on the session: %d, want %d", s.vc.direct.Load(), map[bool]int{true: 1}[tc.want])
			}
			if s.vc.quiet() == tc.want {
				t.Fatalf("quiet = %v with a record taken %v", s.vc.quiet(), tc.want)
			}
			if tc.want && (r.vc != s.vc || r.conn != s.conn || r.fn == nil) {
				t.Fatalf("took %+v", r)
			}
		})
	}
}

// holdHandler holds every inline-safe /hold request until release is closed, counting them in
// held, holds a worker on /block likewise, and answers /fw at once.
type holdHandler struct {
	held    chan string // the request's path, as each held request starts
	release chan struct{}
}

func (h *holdHandler) Inline(r *Message) bool { return r.Path != "/block" }

func (h *holdHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	if r.Path != "/fw" {
		h.held <- r.Path
		<-h.release
	}
	resp := NewMessage(Content)
	resp.Payload = []byte(r.Path)
	return resp
}

// TestDTLSReadersNotHeldByInlineHandlers: however long inline handlers wait on storage, one
// of the socket's readers is always reading. With two workers the inline limit is two (one
// less than the readers): two devices' requests held inline hold two readers; a retransmission
// of one of them, which the third reader finds its session busy with, goes to that session's
// goroutine instead of holding the third reader until the handler returns (pion patch 39's
// TryLock: with a reader waiting for the session, the next device's request never reached a handler:
// "/block never reached the handler");
// with both workers held too, an inline-safe request fills the workers' queue and the next
// one spills. A new device still handshakes and is answered by a worker once they are free,
// and when everything is released every request is answered, none dropped.
func TestDTLSReadersNotHeldByInlineHandlers(t *testing.T) {
	h := &holdHandler{held: make(chan string, 8), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 2, 1
	keys := pskMap{"dev1": "key-one-1", "dev2": "key-two-2", "dev3": "key-three-3", "dev4": "key-four-4",
		"dev5": "key-five-5", "dev6": "key-six-6", "dev7": "key-seven-7"}
	te, l := startDTLSWith(t, h, cfg, DTLSConfig{PSK: keys})
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	defer release() // before the Endpoint stops (cleanups run after deferred calls)

	// Every device handshakes, its session takes records on the readers (one that arrives as
	// the handshake ends may take the session's path), and it is answered twice first, while
	// nothing is held.
	conns := map[string]*dtls.Conn{}
	for _, id := range []string{"dev1", "dev2", "dev3", "dev4", "dev5", "dev6"} {
		c, err := dialDTLSWithin(t, 20*time.Second, te.addr, id, keys[id], nil)
		if err != nil {
			t.Fatalf("%s handshake: %v", id, err)
		}
		t.Cleanup(func() { c.Close() })
		waitReaderReady(t, te, l, id)
		for mid := range uint16(2) {
			if _, err := c.Write(datagram(t, typeCON, mid, req(GET, "/fw"))); err != nil {
				t.Fatal(err)
			}
			if _, err := readFrameWithin(t, c, 20*time.Second); err != nil {
				t.Fatalf("%s: warm-up request: %v", id, err)
			}
		}
		conns[id] = c
	}
	send := func(identity string, mid uint16, path string) {
		t.Helper()
		if _, err := conns[identity].Write(datagram(t, typeCON, mid, req(GET, path))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s (%s)", what, dtlsEngineState(te, l))
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitHeld := func(want string) {
		t.Helper()
		select {
		case got := <-h.held:
			if got != want {
				t.Fatalf("held %s, want %s", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never reached the handler (%s)", want, dtlsEngineState(te, l))
		}
	}
	if te.inl.limit != 2 {
		t.Fatalf("inline limit %d, want 2 (one less than %d readers)", te.inl.limit, dtlsReaders)
	}
	waitUntil("the warm-ups' inline slots free", func() bool { return te.inl.busy.Load() == 0 })
	send("dev1", 10, "/hold") // an inline slot, on a reader
	waitHeld("/hold")
	send("dev2", 20, "/hold") // the other inline slot, on another reader
	waitHeld("/hold")
	if n := te.inl.busy.Load(); n != 2 {
		t.Fatalf("%d inline handlers, want 2 (%s)", n, dtlsEngineState(te, l))
	}
	send("dev1", 10, "/hold")  // a retransmission: its session is busy, so it goes the session's way
	send("dev3", 30, "/block") // a worker
	waitHeld("/block")
	send("dev4", 40, "/block") // the other worker
	waitHeld("/block")
	send("dev5", 50, "/fw") // inline slots taken: queued for the held workers
	waitUntil("dev5's request in the workers' queue", func() bool { return len(te.queue) == cap(te.queue) })
	send("dev6", 60, "/fw") // the queue full too: spilled
	waitUntil("dev6's request spilled", func() bool { return len(te.spilled) == 1 })

	// The third reader still reads: a new device handshakes.
	c7, err := dialDTLSWithin(t, 20*time.Second, te.addr, "dev7", keys["dev7"], nil)
	if err != nil {
		t.Fatalf("a new device could not handshake while inline handlers and workers were held: %v (%s)", err, dtlsEngineState(te, l))
	}
	defer c7.Close()

	release()
	for _, id := range []string{"dev1", "dev2", "dev3", "dev4", "dev5", "dev6"} {
		f, err := readFrameWithin(t, conns[id], 20*time.Second)
		if err != nil || f.typ != typeACK {
			t.Fatalf("%s: no answer once released: %+v, %v (%s)", id, f, err, dtlsEngineState(te, l))
		}
	}
	if _, err := c7.Write(datagram(t, typeCON, 70, req(GET, "/fw"))); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrameWithin(t, c7, 20*time.Second); err != nil || framePayload(f) != "/fw" {
		t.Fatalf("dev7: %+v, %v", f, err)
	}
	if got := testutil.ToFloat64(te.m.dropQueueFull); got != 0 {
		t.Fatalf("queue_full drops = %v, want 0", got)
	}
}

// waitReaderReady waits until the session of identity takes records on the socket's readers
// (handRecords has given it fromReader). Its first records can arrive before that: the client
// finishes its handshake a round trip before the server's goroutine sets the handler, and
// those records take the session's own path.
func waitReaderReady(t *testing.T, te *testEndpoint, l *dtlsLink, identity string) {
	t.Helper()
	ready := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, s := range l.byAddr {
			if s.identity == identity && s.established && s.fromReader != nil {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(20 * time.Second)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("%s's session never took records on the socket's readers (%s)", identity, dtlsEngineState(te, l))
		}
		time.Sleep(time.Millisecond)
	}
}

// dtlsEngineState describes where the records of a DTLS Endpoint went, for a test's failure
// message: the engine's drop counters, its inline slots and queues, and the link's
// sessions (dtlsSessionState).
func dtlsEngineState(te *testEndpoint, l *dtlsLink) string {
	m := te.m
	var requests float64
	for _, c := range m.requestsByCode {
		requests += testutil.ToFloat64(c)
	}
	return fmt.Sprintf("received %v, requests %v, dropped: queue_full %v malformed %v oversize %v source_rate %v; "+
		"inline overflow %v, inline busy %d/%d, workers' queue %d/%d, spilled %d/%d; %s",
		testutil.ToFloat64(m.received), requests, testutil.ToFloat64(m.dropQueueFull),
		testutil.ToFloat64(m.dropMalformed), testutil.ToFloat64(m.dropOversize), testutil.ToFloat64(m.limits.sourceRate),
		testutil.ToFloat64(m.inlineOverflow), te.inl.busy.Load(), te.inl.limit,
		len(te.queue), cap(te.queue), len(te.spilled), cap(te.spilled), dtlsSessionState(l))
}

// dtlsSessionState describes a DTLS link's sessions for a test's failure message: how many it
// holds and in what state, its handshakes, hibernations and drops of datagrams without a session.
func dtlsSessionState(l *dtlsLink) string {
	l.mu.Lock()
	var established, asleep, settling, rx int
	for _, s := range l.byAddr {
		if s.established {
			established++
		}
		if s.idle.state != nil {
			asleep++
		}
		if s.idle.settling != nil || s.idle.falling {
			settling++
		}
		if s.vc != nil {
			rx += len(s.vc.rx)
		}
	}
	sessions, handshaking := len(l.byAddr), l.handshaking
	l.mu.Unlock()
	return fmt.Sprintf("sessions %d (established %d, handshaking %d, asleep %d, settling %d, rx queued %d), "+
		"handshakes ok %v failed %v, hibernated %v, woken %v, no_session drops %v",
		sessions, established, handshaking, asleep, settling, rx, testutil.ToFloat64(l.m.handshakeOK),
		testutil.ToFloat64(l.m.handshakeFailed), testutil.ToFloat64(l.m.hibernated), testutil.ToFloat64(l.m.woken),
		testutil.ToFloat64(l.m.droppedNoSession))
}
