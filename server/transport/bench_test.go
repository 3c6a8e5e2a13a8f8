package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks: round trips of a 20-byte request and a 1 KiB response, through a plain UDP echo
// (the baseline) and through Endpoint.Do against an Endpoint server, at C concurrent
// requesters. Run: go test -run '^$' -bench . -benchtime 3s ./server/transport/

var concurrencies = []int{16, 64, 256}

var (
	rawRateMu sync.Mutex
	rawRate   = map[int]float64{} // round trips per second of the raw echo, by C
)

func setConcurrency(b *testing.B, c int) {
	b.SetParallelism(max(1, c/runtime.GOMAXPROCS(0)))
}

// rawEchoServer answers every datagram with 1 KiB, from one goroutine.
func rawEchoServer(tb testing.TB) (netip.AddrPort, func()) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	resp := make([]byte, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDPAddrPort(resp, from)
		}
	}()
	return srv.LocalAddr().(*net.UDPAddr).AddrPort(), func() { srv.Close(); <-done }
}

// rawClient sends 20 bytes and waits for the answer, re-sending after 50 ms of silence.
func rawClient(tb testing.TB, to netip.AddrPort) func() {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	req := make([]byte, 20)
	buf := make([]byte, 2048)
	return func() {
		for {
			_, _ = c.WriteToUDPAddrPort(req, to)
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
				return
			}
		}
	}
}

func BenchmarkRawUDPEcho(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			rate := benchRaw(b, c)
			rawRateMu.Lock()
			rawRate[c] = rate
			rawRateMu.Unlock()
		})
	}
}

func benchRaw(b *testing.B, c int) float64 {
	addr, stop := rawEchoServer(b)
	defer stop()
	setConcurrency(b, c)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rt := rawClient(b, addr)
		for pb.Next() {
			rt()
		}
	})
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "rt/s")
	return rate
}

// rawBaseline returns the raw echo rate at c, measuring it for a second now if
// BenchmarkRawUDPEcho did not run (testing.Benchmark cannot nest in a benchmark).
func rawBaseline(b *testing.B, c int) float64 {
	rawRateMu.Lock()
	r, ok := rawRate[c]
	rawRateMu.Unlock()
	if ok {
		return r
	}
	addr, stop := rawEchoServer(b)
	defer stop()
	var (
		wg    sync.WaitGroup
		total atomic.Int64
	)
	deadline := time.Now().Add(time.Second)
	start := time.Now()
	for range c {
		rt := rawClient(b, addr)
		wg.Go(func() {
			n := int64(0)
			for time.Now().Before(deadline) {
				rt()
				n++
			}
			total.Add(n)
		})
	}
	wg.Wait()
	r = float64(total.Load()) / time.Since(start).Seconds()
	rawRateMu.Lock()
	rawRate[c] = r
	rawRateMu.Unlock()
	return r
}

func BenchmarkEndpointGET(b *testing.B) {
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			base := rawBaseline(b, c)
			payload := make([]byte, 1024)
			h := HandlerFunc(func(context.Context, Peer, *Message) *Message {
				r := NewMessage(Content)
				r.ContentFormat = 42
				r.Payload = payload
				return r
			})
			srv, stopSrv := benchEndpoint(b, h)
			defer stopSrv()
			cli, stopCli := benchEndpoint(b, nil)
			defer stopCli()
			to := Addr{Network: UDP, AddrPort: srv.LocalAddr().(*net.UDPAddr).AddrPort()}
			setConcurrency(b, c)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				m := req(GET, "/5/0/1") // 20 bytes on the wire with its 8-byte token
				for pb.Next() {
					resp, err := cli.Do(context.Background(), to, m)
					if err != nil || len(resp.Payload) != 1024 {
						b.Errorf("Do: %v", err)
						return
					}
				}
			})
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "rt/s")
			b.ReportMetric(rate/base, "ratio_to_raw")
		})
	}
}

func benchEndpoint(b *testing.B, h Handler) (*Endpoint, func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ACKTimeout = 200 * time.Millisecond // a lost datagram costs little
	e, err := New(pc, UDP, h, cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	return e, func() { cancel(); <-done }
}

// BenchmarkDedupEntryBytes reports the heap held per deduplication entry: 10k answers of a
// typical Register response (2.01 Created, Location-Path rd/<id>, 8-byte token).
func BenchmarkDedupEntryBytes(b *testing.B) {
	for range b.N {
		b.ReportMetric(dedupBytesPerEntry(10000), "B/entry")
	}
}

func dedupBytesPerEntry(n int) float64 {
	resp := NewMessage(Created)
	resp.Token = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	resp.LocationPath = []string{"rd", "0123456789"}
	answer, _ := encode(nil, typeACK, 1, resp)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := newDedup(int64(247 * time.Second))
	for i := range n {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5683)
		k := makeDedupKey(ap, uint16(i))
		d.begin(k, 0)
		d.finish(k, answer, 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(d)
	// Signed: memory another test's goroutines free between the two GCs can leave the heap
	// smaller after than before, and an unsigned difference then wraps to 1.8e15 bytes an entry.
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkEndpointRegister measures LwM2M Register-shaped exchanges (CON POST /rd with a
// query and a link-format payload, answered 2.01 with a Location-Path) at C=64: the path the
// ≥ 5,000 registrations/s target goes through, deduplication cache included.
func BenchmarkEndpointRegister(b *testing.B) {
	h := HandlerFunc(func(_ context.Context, _ Peer, r *Message) *Message {
		resp := NewMessage(Created)
		resp.LocationPath = []string{"rd", "0123456789"}
		return resp
	})
	srv, stopSrv := benchEndpoint(b, h)
	defer stopSrv()
	to := Addr{Network: UDP, AddrPort: srv.LocalAddr().(*net.UDPAddr).AddrPort()}
	setConcurrency(b, 64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One socket per requester, as devices have: a single peer may not send more than
		// 65536 message ids per EXCHANGE_LIFETIME (RFC 7252 §4.4), or the server's duplicate
		// cache would answer a new POST with an old response.
		cli, stopCli := benchEndpoint(b, nil)
		defer stopCli()
		m := req(POST, "/rd")
		m.Query = []string{"ep=urn:imei:123456789012345", "lt=300", "lwm2m=1.1", "b=U"}
		m.ContentFormat = 40
		m.Payload = []byte("</1/0>,</3/0>,</4/0>,</5/0>,</3303/0>")
		for pb.Next() {
			if _, err := cli.Do(context.Background(), to, m); err != nil {
				b.Errorf("Do: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reg/s")
}

// BenchmarkSourceLimiter measures the per-source rate limit on the reader's hot path: one token
// bucket lookup and update per datagram, for traffic from one source, from 1,000 and from
// 200,000 (more than MaxSources: buckets are forgotten and made again).
func BenchmarkSourceLimiter(b *testing.B) {
	for _, n := range []int{1, 1000, 200000} {
		b.Run(fmt.Sprintf("sources=%d", n), func(b *testing.B) {
			l := newSourceLimiter(1e9, 1e9, DefaultConfig().MaxSources, nil)
			addrs := make([]netip.Addr, n)
			for i := range addrs {
				addrs[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			}
			var now int64
			i := 0
			for b.Loop() {
				now += 1000
				if ok, _ := l.allow(addrs[i], now); !ok {
					b.Fatal("refused")
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkDTLSPendingHandshakeBytes reports the heap a ClientHello from a new address holds
// until its handshake ends: pion's connection state while it waits for the cookie (what
// MaxHandshakes multiplies).
func BenchmarkDTLSPendingHandshakeBytes(b *testing.B) {
	const n = 300
	for range b.N {
		te, link := startDTLS(b, nil, DTLSConfig{HandshakeTimeout: time.Minute, HelloVerify: HelloVerifyPion})
		socks := make([]*net.UDPConn, n)
		for i := range socks {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			socks[i] = c
		}
		before := liveHeapBytes()
		for _, c := range socks {
			if _, err := c.WriteToUDPAddrPort(clientHello(nil, nil), te.addr.AddrPort); err != nil {
				b.Fatal(err)
			}
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			link.mu.Lock()
			h := link.handshaking
			link.mu.Unlock()
			if h == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d handshakes pending", h, n)
			}
		}
		time.Sleep(100 * time.Millisecond) // every HelloVerifyRequest sent
		b.ReportMetric(float64(liveHeapBytes()-before)/n, "B/handshake")
	}
}

func liveHeapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
