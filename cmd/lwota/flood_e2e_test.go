package main

import (
	"context"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// The hostile-input acceptance test: with lwota running on plain CoAP and DTLS, 20 plain and 4
// DTLS devices registered, 50,000 random and malformed datagrams hit the CoAP port and 2,000
// bogus ClientHellos the DTLS port, from ten loopback addresses and 1,300 ports. Afterwards
// lwota still answers a new Register (plain and DTLS) and a Read of an old device, every
// registration made before the flood is still there under the same id, the limits counted
// what they refused, and once the pending handshakes timed out the heap and the goroutines
// are back near where they were.

const (
	floodDatagrams = 50000
	floodHellos    = 2000
	heapSlack      = 16 << 20
)

// startFloodService is startService with short timers, so that what a flood leaves behind
// expires within the test: pending DTLS handshakes after 5 s, duplicate-detection entries after
// 10 s. The limits apply to loopback too (no exempt prefixes), and the DTLS handshake rate
// per source is off so that the flood reaches MaxHandshakes, the bound under test.
//
// The limits are low enough that a flood sent slowly still crosses them: on a busy machine the
// flood took 16 s, under the default 2,000 datagrams/s per source and never 1,024 pending
// handshakes at once. Now 25,000 datagrams per source cross 200/s unless they take over 125 s,
// and 2,000 ClientHellos held 5 s each cross 64 pending unless they take over 150 s.
func startFloodService(t *testing.T) *testService {
	t.Helper()
	return startServiceWith(t, t.TempDir(), "", func(cfg *serveConfig) {
		cfg.Core.DTLS.HandshakeTimeout = 5 * time.Second
		cfg.Core.Transport.ExchangeLifetime = 10 * time.Second
	}, "--coap-source-rate-exempt=", "--coap-source-rate=200", "--dtls-handshake-rate=0", "--dtls-max-handshakes=64")
}

func TestFloodLeavesServiceUp(t *testing.T) {
	ts := startFloodService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	coaps := ts.svc.core.CoAPSAddr().String()

	fleet := lwm2mtest.NewFleet(20, simTemplate(), func(i int) string { return fmt.Sprintf("flood-%02d", i) }, nil)
	t.Cleanup(func() { _ = fleet.Close() })
	if _, err := fleet.Start(ctx, ts.coap, 8); err != nil {
		t.Fatalf("fleet: %v", err)
	}
	var secure []*lwm2mtest.Device
	for i := range 4 {
		secure = append(secure, startDTLSDevice(t, ctx, ts, coaps, fmt.Sprintf("flood-dtls-%d", i)))
	}
	before := map[string]string{} // endpoint -> registration id
	for _, d := range append(fleet.Devices(), secure...) {
		reg, ok := ts.svc.core.Registry().Get(d.Endpoint())
		if !ok {
			t.Fatalf("%s not registered", d.Endpoint())
		}
		before[d.Endpoint()] = reg.ID
	}
	heapBefore, goroutinesBefore := liveHeap(), runtime.NumGoroutine()
	t.Logf("before the flood: %d registrations, heap %d KiB, %d goroutines", len(before), heapBefore>>10, goroutinesBefore)

	coapTo, dtlsTo := udpAddr(t, ts.coap), udpAddr(t, coaps)
	coapSocks := floodSockets(t, 2, 2, 8)   // two addresses, so that each goes past its rate
	dtlsSocks := floodSockets(t, 4, 8, 160) // 1,280 sources: far more than MaxHandshakes (64)
	start := time.Now()
	sampler := sampleHeap()
	var flood sync.WaitGroup
	flood.Go(func() { floodCoAP(t, coapSocks, coapTo) })
	flood.Go(func() { floodDTLS(t, dtlsSocks, dtlsTo) })
	flood.Wait()
	sent := time.Since(start)
	waitFor(t, "pending DTLS handshakes to time out", 30*time.Second, func() bool {
		return metricValue(t, ts, "lwota_transport_dtls_sessions") <= float64(len(secure))
	})
	t.Logf("flood sent in %v; heap in use peaked at %d KiB, %d MiB RSS", sent, sampler.stop()>>10, vmRSS()>>20)

	// lwota is up: new devices register, old ones answer.
	late := lwm2mtest.NewDevice(func() lwm2mtest.DeviceConfig { c := simTemplate(); c.Endpoint = "flood-late"; return c }(), nil)
	t.Cleanup(func() { _ = late.Close() })
	if err := late.Start(ctx, ts.coap); err != nil {
		t.Fatalf("Register after the flood: %v", err)
	}
	startDTLSDevice(t, ctx, ts, coaps, "flood-dtls-late")
	for _, ep := range []string{"flood-03", "flood-dtls-1"} {
		var res resultJSON
		if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/objects/3/0/0", nil, &res); code != 200 || len(res.Records) != 1 {
			t.Fatalf("Read /3/0/0 of %s after the flood: status %d, %+v", ep, code, res)
		}
	}
	for ep, id := range before {
		reg, ok := ts.svc.core.Registry().Get(ep)
		if !ok || reg.ID != id {
			t.Fatalf("%s after the flood: registered %v, id %q, want %q", ep, ok, reg.ID, id)
		}
	}

	// The limits counted what they refused.
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"lwota_transport_limit_exceeded_total", []string{"network", "udp", "limit", "source_rate"}},
		{"lwota_transport_limit_exceeded_total", []string{"network", "udp", "limit", "datagram_size"}},
		{"lwota_transport_datagrams_dropped_total", []string{"network", "udp", "reason", "malformed"}},
	} {
		if v := metricValue(t, ts, c.name, c.labels...); v == 0 {
			t.Errorf("%s%v is 0 after the flood", c.name, c.labels)
		}
	}
	// The bogus ClientHellos: with the stateless cookie (a pion that can take over from it,
	// server/transport/dtls_cookie.go) they are answered without any session and never reach
	// MaxHandshakes; with pion's own cookie exchange each holds a pending handshake and
	// MaxHandshakes refuses the rest.
	var checked float64
	for _, r := range []string{"sent", "stale", "malformed"} {
		checked += metricValue(t, ts, "lwota_transport_dtls_hello_verify_total", "network", "dtls", "result", r)
	}
	if checked == 0 && metricValue(t, ts, "lwota_transport_limit_exceeded_total", "network", "dtls", "limit", "dtls_handshakes") == 0 {
		t.Error("the bogus ClientHellos were neither checked statelessly nor refused by MaxHandshakes")
	}

	// Memory: once what the flood left has expired (handshakes: 2 s, duplicate answers: 10 s),
	// the heap and the goroutines are back near the baseline.
	var heapAfter uint64
	waitFor(t, "the heap back near its baseline", 40*time.Second, func() bool {
		heapAfter = liveHeap()
		return heapAfter < heapBefore+heapSlack && runtime.NumGoroutine() < goroutinesBefore+40
	})
	t.Logf("after the flood: heap %d KiB (baseline %d KiB), %d goroutines (baseline %d), source_rate refusals %v, dtls_handshakes refusals %v, malformed %v",
		heapAfter>>10, heapBefore>>10, runtime.NumGoroutine(), goroutinesBefore,
		metricValue(t, ts, "lwota_transport_limit_exceeded_total", "network", "udp", "limit", "source_rate"),
		metricValue(t, ts, "lwota_transport_limit_exceeded_total", "network", "dtls", "limit", "dtls_handshakes"),
		metricValue(t, ts, "lwota_transport_datagrams_dropped_total", "network", "udp", "reason", "malformed"))
}

// startDTLSDevice gives endpoint a PSK credential and registers it over DTLS.
func startDTLSDevice(t *testing.T, ctx context.Context, ts *testService, coaps, endpoint string) *lwm2mtest.Device {
	t.Helper()
	key := []byte("key-of-" + endpoint)
	body := map[string]any{"psk": map[string]string{"identity": "id-" + endpoint, "key": hex.EncodeToString(key)}}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/"+endpoint+"/credentials", body, nil); code != 204 {
		t.Fatalf("PUT credentials of %s: status %d", endpoint, code)
	}
	cfg := simTemplate()
	cfg.Endpoint, cfg.PSKIdentity, cfg.PSK, cfg.RequestTimeout = endpoint, "id-"+endpoint, key, 20*time.Second
	d := lwm2mtest.NewDevice(cfg, nil)
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Start(ctx, coaps); err != nil {
		t.Fatalf("%s over DTLS: %v", endpoint, err)
	}
	return d
}

func udpAddr(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// heapSampler records the highest heap in use until stopped.
type heapSampler struct {
	stopc, done chan struct{}
	max         uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			h.max = max(h.max, m.HeapInuse)
			select {
			case <-h.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// stop ends the sampling and returns the peak.
func (h *heapSampler) stop() uint64 {
	close(h.stopc)
	<-h.done
	return h.max
}

// floodSockets opens perAddr UDP sockets on each of the source addresses 127.0.0.first ..
// 127.0.0.first+addrs-1: socks[a] are those of address a.
func floodSockets(t *testing.T, first, addrs, perAddr int) [][]*net.UDPConn {
	t.Helper()
	socks := make([][]*net.UDPConn, addrs)
	for a := range addrs {
		for range perAddr {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(first+a))})
			if err != nil {
				t.Fatalf("flood socket on 127.0.0.%d: %v", first+a, err)
			}
			t.Cleanup(func() { c.Close() })
			socks[a] = append(socks[a], c)
		}
	}
	return socks
}

// floodFrom runs send once per source address, at the same time, and waits for all.
func floodFrom(socks [][]*net.UDPConn, send func(a int, socks []*net.UDPConn)) {
	var wg sync.WaitGroup
	for a := range socks {
		wg.Go(func() { send(a, socks[a]) })
	}
	wg.Wait()
}

// floodCoAP sends floodDatagrams hostile datagrams to the CoAP port: random bytes, truncated
// headers, bad options, token lengths over 8, oversize datagrams, and POST /rd requests with
// random queries and payloads, from sources (one goroutine per address). Nothing is read back.
func floodCoAP(t *testing.T, sources [][]*net.UDPConn, to *net.UDPAddr) {
	floodFrom(sources, func(a int, socks []*net.UDPConn) {
		rng := mrand.New(mrand.NewPCG(1, uint64(a)))
		buf := make([]byte, 0, 2048)
		for i := range floodDatagrams / 2 {
			buf = hostileDatagram(rng, buf[:0], uint16(i))
			if _, err := socks[i%len(socks)].WriteToUDP(buf, to); err != nil {
				t.Errorf("flood datagram %d: %v", i, err)
				return
			}
		}
	})
}

func hostileDatagram(rng *mrand.Rand, b []byte, mid uint16) []byte {
	random := func(n int) []byte {
		for range n {
			b = append(b, byte(rng.Uint32()))
		}
		return b
	}
	switch rng.IntN(7) {
	case 0: // random bytes
		return random(1 + rng.IntN(1400))
	case 1: // a truncated header
		return append(b, []byte{0x40, 0x01, 0x00}[:1+rng.IntN(3)]...)
	case 2: // token length 9..15
		b = append(b, 0x40|byte(9+rng.IntN(7)), 0x01, byte(mid>>8), byte(mid))
		return random(rng.IntN(20))
	case 3: // options with reserved deltas and lengths, unknown critical options
		b = append(b, 0x40, byte(1+rng.IntN(4)), byte(mid>>8), byte(mid))
		return random(1 + rng.IntN(60))
	case 4: // oversize
		b = append(b, 0x40, 0x02, byte(mid>>8), byte(mid), 0xb2, 'r', 'd', 0xff)
		return random(1200 + rng.IntN(800))
	default: // POST /rd with a random endpoint, lifetime and payload
		b = append(b, 0x40|byte(rng.IntN(2))<<4, 0x02, byte(mid>>8), byte(mid), 0xb2, 'r', 'd')
		q := []byte(fmt.Sprintf("ep=%x", rng.Uint64()))
		if rng.IntN(4) == 0 { // a query of random bytes
			q = q[:0]
			for range 1 + rng.IntN(20) {
				q = append(q, byte(rng.Uint32()))
			}
		}
		if len(q) < 13 { // Uri-Query, option 15: delta 4 from Uri-Path
			b = append(b, 0x40|byte(len(q)))
		} else {
			b = append(b, 0x4d, byte(len(q)-13))
		}
		b = append(b, q...)
		b = append(b, 0xff)
		return random(1 + rng.IntN(300))
	}
}

// floodDTLS sends floodHellos bogus ClientHellos (random session ids and cookies, now and then
// a broken length) to the DTLS port from sources, and as many random datagrams.
func floodDTLS(t *testing.T, sources [][]*net.UDPConn, to *net.UDPAddr) {
	floodFrom(sources, func(a int, socks []*net.UDPConn) {
		floodHellosFrom(t, mrand.New(mrand.NewPCG(3, uint64(a))), socks, to, floodHellos/8)
	})
}

func floodHellosFrom(t *testing.T, rng *mrand.Rand, socks []*net.UDPConn, to *net.UDPAddr, n int) {
	for i := range n {
		sid := make([]byte, rng.IntN(33))
		cookie := make([]byte, rng.IntN(33))
		for j := range sid {
			sid[j] = byte(rng.Uint32())
		}
		for j := range cookie {
			cookie[j] = byte(rng.Uint32())
		}
		hello := bogusClientHello(rng, sid, cookie)
		if rng.IntN(10) == 0 {
			hello = hello[:14+rng.IntN(len(hello)-14)] // cut short
		}
		s := socks[i%len(socks)]
		if _, err := s.WriteToUDP(hello, to); err != nil {
			t.Errorf("hello %d: %v", i, err)
			return
		}
		junk := make([]byte, 1+rng.IntN(200))
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		if _, err := s.WriteToUDP(junk, to); err != nil {
			t.Errorf("junk %d: %v", i, err)
			return
		}
	}
}

// bogusClientHello is a DTLS 1.2 ClientHello record of epoch 0 with the given session id and
// cookie, offering the PSK suites and a random one.
func bogusClientHello(rng *mrand.Rand, sessionID, cookie []byte) []byte {
	body := []byte{0xfe, 0xfd}
	for range 32 {
		body = append(body, byte(rng.Uint32()))
	}
	body = append(append(body, byte(len(sessionID))), sessionID...)
	body = append(append(body, byte(len(cookie))), cookie...)
	body = append(body, 0, 6, 0xc0, 0xa8, 0x00, 0xa8, byte(rng.Uint32()), byte(rng.Uint32()), 1, 0)
	n := len(body)
	hs := append([]byte{1, byte(n >> 16), byte(n >> 8), byte(n), 0, 0, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
	rec := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, byte(rng.Uint32()), byte(rng.Uint32()), byte(len(hs) >> 8), byte(len(hs))}
	return append(rec, hs...)
}

// metricValue reads a counter or gauge of the service's registry; 0 when the series is absent.
func metricValue(t *testing.T, ts *testService, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := ts.svc.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
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
