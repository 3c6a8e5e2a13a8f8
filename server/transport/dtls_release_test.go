package transport

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// The memory of DTLS sessions that ended: lwota bench fleet saw 142 MiB of live heap in the
// process after its 100,000 idle DTLS sessions and their endpoint were gone. These tests open
// sessions against a real DTLS Endpoint, end them (the devices close them; the endpoint stops
// with them open, awake and asleep), collect, and check that the heap and the goroutines come
// back to where they were: nothing keeps an ended session reachable.
//
// That heap was not the sessions': the Go runtime never frees a goroutine's descriptor (about
// 490 bytes, golang/go#9869, "Free dead Gs"), it keeps it for the next goroutine, and 100,000
// awake sessions ran 3 goroutines each: 300,000 descriptors are 140 MiB. The tests start that
// many goroutines' worth before their baseline (warmGoroutines), so that they see what the
// sessions themselves leave.

// releaseSessions is how many sessions each case opens: enough that a leak of a session's
// state (20 KiB awake, 2.5 KiB asleep) stands far above the noise of a collection.
const releaseSessions = 200

// liveHeapNow is the live heap after two full collections (the second frees what sync.Pools
// kept in their victim caches through the first).
func liveHeapNow() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// warmGoroutines makes the runtime hold n goroutine descriptors before a baseline is taken: it
// reuses them for the goroutines a test starts later, rather than allocating (and keeping) new
// ones inside the measurement.
func warmGoroutines(n int) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Go(func() { <-release })
	}
	close(release)
	wg.Wait()
}

// goroutinesPerSession bounds the goroutines one session costs at its peak, client and server
// in this process (pion's reader and handshake on either side, the server session's reader),
// for warmGoroutines.
const goroutinesPerSession = 8

// openSessions handshakes n pion clients with the endpoint at to, 8 at a time.
func openSessions(t *testing.T, to Addr, n int) []*dtls.Conn {
	t.Helper()
	conns := make([]*dtls.Conn, n)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Pointer[error]
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || fail.Load() != nil {
					return
				}
				// One attempt with time to spare: pion retransmits a lost flight within it. A
				// client that gave up at dialDTLS's 2 s on a busy machine and tried again from
				// a new socket left its first server session behind (dialDTLSWithin): one more
				// than these tests count ("timed out waiting for sessions open" under stress).
				var err error
				if conns[i], err = dialDTLSWithin(t, 20*time.Second, to, "dev1", "secretkey123", nil); err != nil {
					err = fmt.Errorf("session %d: %w", i, err)
					fail.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := fail.Load(); err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		t.Fatal(*err)
	}
	return conns
}

// checkReleased fails when more than a twentieth of what the sessions held (held, the heap with
// them open minus before) is still live now, or when goroutines are left over.
func checkReleased(t *testing.T, what string, before, held int64, goroutines int) {
	t.Helper()
	waitGoroutines(t, goroutines)
	after := liveHeapNow()
	t.Logf("%s: live heap %d KiB before, +%d KiB with %d sessions (%d B each), +%d KiB after (%d B each)",
		what, before>>10, held>>10, releaseSessions, held/releaseSessions, (after-before)>>10, (after-before)/releaseSessions)
	if held < releaseSessions*1024 {
		t.Fatalf("the sessions held only %d B of heap: the measurement does not see them", held)
	}
	if left := after - before; left > held/20 {
		t.Errorf("%s: %d KiB of the %d KiB the sessions held are still live (%d B a session)", what, left>>10, held>>10, left/releaseSessions)
	}
}

// TestDTLSSessionsReleasedWhenDevicesClose: devices close their sessions (close_notify); once
// the endpoint has ended them, nothing of them stays live while the endpoint serves on.
func TestDTLSSessionsReleasedWhenDevicesClose(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{IdleTimeout: time.Hour})
	warmGoroutines(goroutinesPerSession * releaseSessions)
	before, g0 := liveHeapNow(), runtime.NumGoroutine()
	conns := openSessions(t, te.addr, releaseSessions)
	waitSessions(t, link, 10*time.Second, "sessions open", func() bool { return link.sessions() == releaseSessions })
	held := liveHeapNow() - before
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for link.sessions() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions still open 20 s after their devices closed them: %s", dtlsSessionState(link))
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkReleased(t, "closed by the devices", before, held, g0)
}

// TestDTLSSessionsReleasedWhenEndpointStops: the endpoint stops while it holds sessions, half
// of them asleep (dtls_idle.go), as lwota bench fleet's does after its idle sessions were
// measured; the devices vanish without a close_notify. Once Serve returned, nothing of the
// endpoint or its sessions stays live.
func TestDTLSSessionsReleasedWhenEndpointStops(t *testing.T) {
	checkLeaks(t)
	warmGoroutines(goroutinesPerSession * releaseSessions)
	before, g0 := liveHeapNow(), runtime.NumGoroutine()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewDTLS(pc, registerHandler(new(atomic.Int64), nil), testConfig(),
		DTLSConfig{PSK: testKeys, IdleTimeout: time.Hour, HibernateAfter: 300 * time.Millisecond}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	to := Addr{Network: DTLS, AddrPort: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	link := e.link.(*dtlsLink)
	asleep := openSessions(t, to, releaseSessions/2)
	waitSessions(t, link, 10*time.Second, "the first half asleep", func() bool { return link.sleeping() == releaseSessions/2 })
	awake := openSessions(t, to, releaseSessions/2)
	waitSessions(t, link, 10*time.Second, "sessions open", func() bool { return link.sessions() == releaseSessions })
	held := liveHeapNow() - before
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	e, link = nil, nil
	// The devices vanish: their sockets close, no close_notify reaches anybody.
	for _, c := range append(asleep, awake...) {
		_ = c.Close()
	}
	asleep, awake = nil, nil
	checkReleased(t, "endpoint stopped", before, held, g0)
}

// waitSessions waits up to d for cond, a condition on l's sessions, and fails with their state.
func waitSessions(t *testing.T, l *dtlsLink, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, dtlsSessionState(l))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
