//go:build unix

package lwm2mtest

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	piondtlsnet "github.com/pion/dtls/v3/pkg/net"
)

// lendDevices is how many devices TestLoadDeviceHoldsNoReadBuffer dials per kind of socket.
const lendDevices = 40

// TestLoadDeviceHoldsNoReadBuffer: an established load device whose pion reader waits for the
// server's next datagram holds at least 6 KiB less live heap over its lending socket
// (dtls_lend.go) than over pion's PacketConnFromConn, which has pion wait with an 8 KiB read
// buffer; the server (in this process too) is the same for both. It fails when the socket does
// not lend (pion reads it through ReadFrom). Then a pull over a lending socket gets its blocks.
func TestLoadDeviceHoldsNoReadBuffer(t *testing.T) {
	uri := dtlsBlockServer(t, false, false)
	raddr, pathOpts, err := pullTarget(uri, "coaps", "5684")
	if err != nil {
		t.Fatal(err)
	}
	suites, err := ParseDTLSSuites("psk-ccm8")
	if err != nil {
		t.Fatal(err)
	}
	client := DTLSLoadClient{Suite: suites[0], PSK: pullPSK}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	perDevice := func(wrap func(*net.UDPConn) net.PacketConn) int64 {
		before := settledHeap(ctx, t)
		conns := make([]*piondtls.Conn, 0, lendDevices)
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for i := range lendDevices {
			c, err := client.dial(ctx, raddr, i, wrap)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		return (settledHeap(ctx, t) - before) / lendDevices
	}
	plain := func(uc *net.UDPConn) net.PacketConn { return piondtlsnet.PacketConnFromConn(uc) }
	perDevice(lendingPacketConn) // warm up: goroutine descriptors and pools the runtime keeps
	plainBytes, lentBytes := perDevice(plain), perDevice(lendingPacketConn)
	t.Logf("live heap per established device (and its server session): %d B through ReadFrom, %d B lending", plainBytes, lentBytes)
	if plainBytes-lentBytes < 6<<10 {
		t.Fatalf("a lending device holds %d B, a ReadFrom one %d B: want at least 6 KiB less", lentBytes, plainBytes)
	}

	c, err := client.Dial(ctx, raddr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := PullConfig{URI: uri, Devices: 1, Duration: 2 * time.Second}.withDefaults() // 2 s: see TestPullLoadErrors
	d := &pullDevice{cfg: cfg, conn: c, pathOpts: pathOpts, blocks: new(atomic.Int64)}
	rctx, rcancel := context.WithTimeout(ctx, cfg.Duration)
	defer rcancel()
	d.runEvents(rctx, c)
	if d.nErrors != 0 || d.nBlocks == 0 {
		t.Fatalf("pull over a lending socket: %d blocks, %d errors (%v)", d.nBlocks, d.nErrors, d.firstErr)
	}
}

// liveHeap is the live heap after two collections (the second empties sync.Pool's victim
// caches).
// settledHeap is the live heap once it stopped moving: three readings 100 ms apart within
// 128 B a device of each other. What the devices and their server sessions hold settles when
// the scheduler has run their goroutines (a reader waiting, with or without its buffer; a
// finished handshake's state machine gone), which on a loaded machine comes well after the
// dials return: read at once, the heap per device moved between 12 and 38 KB beside stress-ng.
func settledHeap(ctx context.Context, t *testing.T) int64 {
	t.Helper()
	prev := liveHeap()
	for stable := 0; stable < 3; {
		select {
		case <-ctx.Done():
			t.Fatalf("the live heap never settled: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		h := liveHeap()
		if d := h - prev; d < 128*lendDevices && d > -128*lendDevices {
			stable++
		} else {
			stable = 0
		}
		prev = h
	}
	return prev
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
