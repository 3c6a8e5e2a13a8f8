package transport

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestQueueDirect: the demultiplexer queues for the record goroutines only an application data
// record (content type 23) of an established session that is awake; everything else, and a
// record that finds the queue full, takes the session's path (queueDirect reports false and
// holds nothing). A queued record keeps its session from falling asleep until it has run
// (quiet, dtls_idle.go).
func TestQueueDirect(t *testing.T) {
	appData := append([]byte{23, 0xfe, 0xfd}, make([]byte, 30)...)
	from := netip.MustParseAddrPort("192.0.2.1:5684")
	for _, tc := range []struct {
		name      string
		record    []byte
		session   func(*dtlsSession)
		queueFull bool
		want      bool
	}{
		{name: "application data", record: appData, want: true},
		{name: "connection id record", record: append([]byte{25}, appData[1:]...)},
		{name: "handshake", record: append([]byte{22}, appData[1:]...)},
		{name: "alert", record: append([]byte{21}, appData[1:]...)},
		{name: "short", record: appData[:12]},
		{name: "handshaking", record: appData, session: func(s *dtlsSession) { s.established = false }},
		{name: "asleep", record: appData, session: func(s *dtlsSession) { s.conn = nil }},
		{name: "falling asleep", record: appData, session: func(s *dtlsSession) { s.idle.falling = true }},
		{name: "waking", record: appData, session: func(s *dtlsSession) { s.idle.settling = make(chan struct{}) }},
		{name: "queue full", record: appData, queueFull: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &dtlsLink{direct: dtlsDirect{q: make(chan directRecord, 1)}}
			s := &dtlsSession{established: true, conn: &dtls.Conn{}}
			s.vc = newSessionConn(l, s)
			s.vc.state.Store(rxIdle) // pion waits for its next record
			if tc.session != nil {
				tc.session(s)
			}
			if tc.queueFull {
				l.direct.q <- directRecord{}
			}
			if got := l.queueDirect(s, tc.record, from); got != tc.want {
				t.Fatalf("queueDirect = %v, want %v", got, tc.want)
			}
			if got := s.vc.direct.Load() == 0; got == tc.want {
				t.Fatalf("records counted on the session: %d, want %d", s.vc.direct.Load(), map[bool]int{true: 1}[tc.want])
			}
			if s.vc.quiet() == tc.want {
				t.Fatalf("quiet = %v with a record queued %v", s.vc.quiet(), tc.want)
			}
			if !tc.want {
				return
			}
			r := <-l.direct.q
			if r.s != s || r.vc != s.vc || r.conn != s.conn || string(r.in.b) != string(tc.record) || r.in.from != from {
				t.Fatalf("queued %+v", r)
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

// TestDTLSRecordGoroutineNotHeldByOverflow: inline-safe requests that overflow (inline slots
// taken, workers' queue full) and then wait on storage never hold every record goroutine, so
// other devices' records still get through. With one worker there are three record
// goroutines: one holds the only inline slot, one the first overflowing request (at most
// Workers run in place), and the second overflowing request runs on a goroutine of its own,
// leaving the third free for dev6. Were every overflowing request run in place, dev6 would
// never be answered.
//
// The scenario needs dev1's /hold in the inline slot, not on the only worker: a handler that
// ran inline keeps its slot until just after its answer is written, so the last warm-up's may
// still hold it when the device has read the answer, and dev1's /hold then goes to the worker
// (as designed: an inline-safe request that finds the slots taken is queued), where dev2's
// /block waits behind it. On a busy machine it did (CI: "/block never reached the handler").
func TestDTLSRecordGoroutineNotHeldByOverflow(t *testing.T) {
	h := &holdHandler{held: make(chan string, 8), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1
	keys := pskMap{"dev1": "key-one-1", "dev2": "key-two-2", "dev3": "key-three-3", "dev4": "key-four-4", "dev5": "key-five-5", "dev6": "key-six-6"}
	te, l := startDTLSWith(t, h, cfg, DTLSConfig{PSK: keys})
	defer close(h.release) // before the Endpoint stops (cleanups run after deferred calls)

	// Every device handshakes and is answered twice first (a record that arrives as the
	// handshake ends may take the session's path), while nothing is held.
	conns := map[string]*dtls.Conn{}
	for _, id := range []string{"dev1", "dev2", "dev3", "dev4", "dev5", "dev6"} {
		c, err := dialDTLS(t, te.addr, id, keys[id], nil)
		if err != nil {
			t.Fatalf("%s handshake: %v", id, err)
		}
		t.Cleanup(func() { c.Close() })
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
	send := func(identity string, mid uint16, path string) func() (frame, error) {
		t.Helper()
		c := conns[identity]
		if _, err := c.Write(datagram(t, typeCON, mid, req(GET, path))); err != nil {
			t.Fatal(err)
		}
		return func() (frame, error) { return readFrameWithin(t, c, 20*time.Second) }
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
	waitUntil("the warm-ups' inline slots free", func() bool { return te.inl.busy.Load() == 0 })
	send("dev1", 10, "/hold") // the only inline slot, on a record goroutine
	waitHeld("/hold")
	if n := te.inl.busy.Load(); n != 1 {
		t.Fatalf("dev1's /hold runs on the worker, not inline (%d inline handlers; %s)", n, dtlsEngineState(te, l))
	}
	send("dev2", 20, "/block") // the only worker
	waitHeld("/block")
	send("dev3", 30, "/fw") // inline slot taken: queued for the held worker
	waitUntil("dev3's request in the workers' queue", func() bool { return len(te.queue) == cap(te.queue) })
	send("dev4", 40, "/hold") // overflows, and waits on its record goroutine
	waitHeld("/hold")
	send("dev5", 50, "/hold") // overflows, and waits on a goroutine of its own
	waitHeld("/hold")
	if n, g := te.inl.overflowed.Load(), te.ovf.pooled.Load(); n != 1 || g != 1 {
		t.Fatalf("overflowing requests on record goroutines %d, on overflow goroutines %d; want 1 and 1 (%s)", n, g, dtlsEngineState(te, l))
	}
	answer := send("dev6", 60, "/fw")
	if f, err := answer(); err != nil || framePayload(f) != "/fw" {
		t.Fatalf("dev6 got no answer while overflowing requests waited (%+v, %v; %s)", f, err, dtlsEngineState(te, l))
	}
}

// dtlsEngineState describes where the records of a DTLS Endpoint went, for a test's failure
// message: the engine's drop counters, its inline and overflow slots and queues, and the link's
// sessions (dtlsSessionState).
func dtlsEngineState(te *testEndpoint, l *dtlsLink) string {
	m := te.m
	var requests float64
	for _, c := range m.requestsByCode {
		requests += testutil.ToFloat64(c)
	}
	return fmt.Sprintf("received %v, requests %v, dropped: queue_full %v malformed %v oversize %v source_rate %v; "+
		"inline overflow %v, inline busy %d/%d, overflowed %d, overflow goroutines %d, workers' queue %d/%d, record queue %d; %s",
		testutil.ToFloat64(m.received), requests, testutil.ToFloat64(m.dropQueueFull),
		testutil.ToFloat64(m.dropMalformed), testutil.ToFloat64(m.dropOversize), testutil.ToFloat64(m.limits.sourceRate),
		testutil.ToFloat64(m.inlineOverflow), te.inl.busy.Load(), te.inl.limit,
		te.inl.overflowed.Load(), te.ovf.pooled.Load(), len(te.queue), cap(te.queue), len(l.direct.q), dtlsSessionState(l))
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
