package transport

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testConfig is DefaultConfig with fast retransmissions.
func testConfig() Config {
	c := DefaultConfig()
	c.ACKTimeout = 50 * time.Millisecond
	c.ACKRandomFactor = 1
	return c
}

type testEndpoint struct {
	*Endpoint
	reg  *prometheus.Registry
	addr Addr
}

// startEndpoint runs an Endpoint on 127.0.0.1:0 until the test ends, then checks that Serve
// returned and left no goroutine behind.
func startEndpoint(t *testing.T, h Handler, cfg Config) *testEndpoint {
	t.Helper()
	checkLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	reg := prometheus.NewRegistry()
	e, err := New(pc, UDP, h, cfg, nil, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return")
		}
	})
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	return &testEndpoint{Endpoint: e, reg: reg, addr: Addr{Network: UDP, AddrPort: ap}}
}

var leakChecked sync.Map // *testing.T -> struct{}

// checkLeaks records the goroutine count the first time a test starts an Endpoint and, once
// every Endpoint of the test has stopped (cleanups run last-in first-out), polls until the
// count is back to it.
func checkLeaks(t *testing.T) {
	if _, loaded := leakChecked.LoadOrStore(t, struct{}{}); loaded {
		return
	}
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		leakChecked.Delete(t)
		waitGoroutines(t, before)
	})
}

// waitGoroutines polls until the goroutine count is back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d > %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually polls cond (a wait for a condition, not a sleep for synchronisation).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// counter reads a counter or counter-vec child from the endpoint's registry (tests and benchmarks).
func (te *testEndpoint) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := te.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// rawPeer is a device simulated with a bare UDP socket.
type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c}
}

func (p *rawPeer) addr() Addr {
	return Addr{Network: UDP, AddrPort: p.conn.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (p *rawPeer) send(to Addr, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to.AddrPort); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// recv reads one datagram, failing the test after 3 s.
func (p *rawPeer) recv() ([]byte, netip.AddrPort) {
	p.t.Helper()
	b, from, err := p.tryRecv(3 * time.Second)
	if err != nil {
		p.t.Fatalf("recv: %v", err)
	}
	return b, from
}

func (p *rawPeer) tryRecv(d time.Duration) ([]byte, netip.AddrPort, error) {
	buf := make([]byte, 70000)
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.conn.ReadFromUDPAddrPort(buf)
	return buf[:n], from, err
}

// recvFrame reads and decodes one datagram.
func (p *rawPeer) recvFrame() frame {
	p.t.Helper()
	b, _ := p.recv()
	f, err := decode(b)
	if err != nil {
		p.t.Fatalf("decode % x: %v", b, err)
	}
	return f
}

// datagram encodes m for tests.
func datagram(t *testing.T, typ uint8, mid uint16, m *Message) []byte {
	t.Helper()
	b, err := encode(nil, typ, mid, m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func req(code Code, path string, token ...byte) *Message {
	m := NewMessage(code)
	m.Path = path
	m.Token = token
	return m
}

// countingHandler counts calls and answers with fn.
type countingHandler struct {
	calls atomic.Int64
	fn    func(ctx context.Context, from Peer, req *Message) *Message
}

func (h *countingHandler) ServeCoAP(ctx context.Context, from Peer, r *Message) *Message {
	h.calls.Add(1)
	return h.fn(ctx, from, r)
}
