package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
)

// DTLS benchmarks: PSK handshakes per second (lwota bench dtls) and the pull over DTLS that
// lwota bench pull --dtls adds. Every emulated device has its own identity, bench-N, and all
// share one key.

var benchPSKKey = []byte("lwota-bench-psk-0123456789abcdef")

func benchPSK(i int) lwm2mtest.PSK {
	return lwm2mtest.PSK{Identity: "bench-" + strconv.Itoa(i), Key: benchPSKKey}
}

// benchPSKs knows every bench-N identity.
type benchPSKs struct{}

func (benchPSKs) PSK(_ context.Context, identity string) ([]byte, error) {
	if strings.HasPrefix(identity, "bench-") {
		return benchPSKKey, nil
	}
	return nil, fmt.Errorf("unknown identity %q", identity)
}

// serveBenchDTLS runs a DTLS Endpoint answering with h (nil: 4.04) on loopback, with lwota's
// defaults, until stop is called.
func serveBenchDTLS(ctx context.Context, h transport.Handler) (addr string, stop func(), err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ep, err := transport.NewDTLS(pc, h, transport.DefaultConfig(), transport.DTLSConfig{PSK: benchPSKs{}}, nil, nil)
	if err != nil {
		pc.Close()
		return "", nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- ep.Serve(sctx) }()
	return pc.LocalAddr().String(), func() { cancel(); <-served }, nil
}

// benchDTLSCommand is `lwota bench dtls`: DTLS 1.2 PSK handshakes per second.
func benchDTLSCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench dtls", stderr)
	clients := fs.String("clients", "1,16,64", "comma-separated numbers of devices handshaking at once, one run each")
	duration := fs.Duration("duration", 10*time.Second, "how long each run handshakes")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	var counts []int
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bench dtls: --clients: %q is not a client count", f)
		}
		counts = append(counts, n)
	}
	return BenchDTLSHandshakes(ctx, stdout, counts, *duration)
}

// BenchDTLSHandshakes measures full DTLS 1.2 PSK handshakes (cookie exchange included,
// TLS_PSK_WITH_AES_128_CCM_8) against a transport DTLS Endpoint on loopback with lwota's
// defaults: at each count of concurrent clients, for d, every client handshakes from a new
// socket, closes the session and starts over. Client and server share this process, so the
// CPU per handshake counts both sides.
func BenchDTLSHandshakes(ctx context.Context, w io.Writer, clients []int, d time.Duration) error {
	addr, stop, err := serveBenchDTLS(ctx, nil)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(w, "dtls handshakes: PSK, AES_128_CCM_8, cookie exchange, a new socket each; %v per run; client and server share this process\n", d)
	fmt.Fprintf(w, "%8s %14s %12s %10s %8s %10s\n", "clients", "handshakes/s", "cpu us/hs", "total", "errors", "rss end")
	for _, c := range clients {
		cpuStart := processCPU()
		rep, err := lwm2mtest.DTLSHandshakes(ctx, addr, c, d, benchPSK)
		if err != nil {
			return err
		}
		cpu := processCPU() - cpuStart
		perHS := 0.0
		if rep.Handshakes > 0 {
			perHS = float64(cpu.Microseconds()) / float64(rep.Handshakes)
		}
		fmt.Fprintf(w, "%8d %14.0f %12.0f %10d %8d %6d MiB\n", c, rep.PerSec, perHS, rep.Handshakes, rep.Errors, vmRSS()>>20)
		if rep.FirstError != "" {
			fmt.Fprintf(w, "%8s first error: %s\n", "", rep.FirstError)
		}
	}
	return nil
}
