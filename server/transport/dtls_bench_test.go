package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkDTLSBlock2 guards issue 16's first goal: Block2 blocks/s over DTLS at least 0.6× plain
// CoAP Block2 measured in the same run, for the cipher suites LwM2M devices use. For each
// concurrency C it first measures plain CoAP (the baseline, sub-benchmark suite=none), then one
// sub-benchmark per suite, each reporting blocks/s, ratio_to_plain and the process CPU per
// block (client and server share the process). C devices each keep one 1 KiB block request in
// flight, as firmware pulls do. Run:
//
//	go test -run '^$' -bench DTLSBlock2 -benchtime 20000x ./server/transport/
func BenchmarkDTLSBlock2(b *testing.B) {
	suites := []struct {
		name  string
		suite CipherSuite
	}{
		{"none", 0},
		{"psk-ccm8", TLS_PSK_WITH_AES_128_CCM_8},
		{"psk-gcm", TLS_PSK_WITH_AES_128_GCM_SHA256},
		{"ecdhe-ccm8", TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8},
	}
	for _, c := range []int{16, 64} {
		var plain float64
		for _, s := range suites {
			b.Run(fmt.Sprintf("C=%d/suite=%s", c, s.name), func(b *testing.B) {
				rate, cpu := benchBlock2(b, c, s.suite)
				b.ReportMetric(rate, "blocks/s")
				b.ReportMetric(cpu, "cpu-us/block")
				if s.suite == 0 {
					plain = rate
				} else if plain > 0 {
					b.ReportMetric(rate/plain, "ratio_to_plain")
				}
			})
		}
	}
}

// block2Handler serves a 1 MiB image in 1 KiB blocks, as firmware/transfer does: statelessly,
// the handler slicing the block itself, and inline-safe as firmware/transfer is (dtls_inline.go).
func block2Handler() Handler {
	img := make([]byte, 1<<20)
	return Inline(HandlerFunc(func(_ context.Context, _ Peer, r *Message) *Message {
		num := r.Block2.Num % 1024
		resp := NewMessage(Content)
		resp.ContentFormat = 42
		resp.Block2 = Block{Set: true, Num: num, More: num < 1023, SZX: 6}
		resp.Payload = img[num*1024 : (num+1)*1024]
		return resp
	}))
}

// benchBlock2 runs b.N block requests from c devices against an Endpoint (plain UDP when suite is
// 0, DTLS with suite otherwise) and returns blocks/s and process CPU µs per block.
func benchBlock2(b *testing.B, c int, suite CipherSuite) (float64, float64) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	var e *Endpoint
	var clientOpts []dtls.ClientOption
	switch suite {
	case 0:
		e, err = New(pc, UDP, block2Handler(), cfg, nil, nil)
	case TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8:
		ca := newTestCA(b, "bench CA")
		// lwota's default suites (the client picks one): pion refuses a server that has a PSK
		// callback, as lwota always has, but no PSK suite.
		dc := DTLSConfig{PSK: testKeys, HandshakeRate: -1,
			X509: &X509Config{Certificate: ca.issue(b, "lwota", true), ClientCAs: ca.pool}}
		e, err = NewDTLS(pc, block2Handler(), cfg, dc, nil, prometheus.NewRegistry())
		clientOpts = []dtls.ClientOption{dtls.WithCertificates(ca.issue(b, "dev1", false)), dtls.WithRootCAs(ca.pool),
			dtls.WithServerName("localhost"), dtls.WithCipherSuites(dtls.CipherSuiteID(suite)),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret)}
	default:
		dc := DTLSConfig{PSK: testKeys, HandshakeRate: -1} // the default suites; the client picks one
		e, err = NewDTLS(pc, block2Handler(), cfg, dc, nil, prometheus.NewRegistry())
		clientOpts = []dtls.ClientOption{dtls.WithPSK(func([]byte) ([]byte, error) { return []byte("secretkey123"), nil }),
			dtls.WithPSKIdentityHint([]byte("dev1")), dtls.WithCipherSuites(dtls.CipherSuiteID(suite))}
	}
	if err != nil {
		pc.Close()
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(served) }()
	defer func() { cancel(); <-served }()
	to := pc.LocalAddr().(*net.UDPAddr)

	conns := make([]net.Conn, c)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	// The client side runs under the pprof label side=client (pion's goroutines inherit it), so
	// that a profile of this benchmark splits: go tool pprof -tagfocus side=client / -tagignore.
	clientCtx := pprof.WithLabels(ctx, pprof.Labels("side", "client"))
	pprof.SetGoroutineLabels(clientCtx)
	defer pprof.SetGoroutineLabels(ctx)
	for i := range conns {
		if suite == 0 {
			if conns[i], err = net.DialUDP("udp", nil, to); err != nil {
				b.Fatal(err)
			}
			continue
		}
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		dc, err := dtls.ClientWithOptions(u, to, clientOpts...)
		if err != nil {
			u.Close()
			b.Fatal(err)
		}
		conns[i] = dc
		hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
		err = dc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			b.Fatalf("handshake %d: %v", i, err)
		}
	}
	var (
		left   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Value
	)
	left.Store(int64(b.N))
	cpu0 := processCPUTime()
	b.ResetTimer()
	for i, cn := range conns {
		wg.Go(func() {
			if err := pullBlocks(cn, &left, uint16(i*4099)); err != nil {
				failed.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	return rate, float64((processCPUTime() - cpu0).Microseconds()) / float64(b.N)
}

// pullBlocks requests blocks over cn while left is positive, one in flight, retransmitting after
// 200 ms of silence.
func pullBlocks(cn net.Conn, left *atomic.Int64, mid uint16) error {
	out := make([]byte, 0, 64)
	in := make([]byte, 2048)
	tok := make([]byte, 8)
	var num uint32
	for left.Add(-1) >= 0 {
		mid++
		binary.BigEndian.PutUint16(tok, mid)
		m := NewMessage(GET)
		m.Token, m.Path = tok, "/fw/img"
		m.Block2 = Block{Set: true, Num: num, SZX: 6}
		var err error
		if out, err = encode(out[:0], typeCON, mid, m); err != nil {
			return err
		}
		if err := exchangeBlock(cn, out, in, mid); err != nil {
			return fmt.Errorf("block %d: %w", num, err)
		}
		num = (num + 1) % 1024
	}
	return nil
}

// exchangeBlock sends req and reads until the answer with message id mid arrives (answers to
// earlier retransmissions are skipped), sending req again after 200 ms of silence.
func exchangeBlock(cn net.Conn, req, in []byte, mid uint16) error {
	for range 20 {
		if _, err := cn.Write(req); err != nil {
			return err
		}
		_ = cn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, err := cn.Read(in)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if err != nil {
				return err
			}
			if n < 4 || binary.BigEndian.Uint16(in[2:4]) != mid {
				continue
			}
			if n < 1024 {
				return fmt.Errorf("short answer (%d bytes)", n)
			}
			return nil
		}
	}
	return errors.New("no answer")
}

// processCPUTime is the user and system CPU this process used so far.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
