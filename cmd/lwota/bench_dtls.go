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

// benchDTLSCommand is `lwota bench dtls`: DTLS 1.2 PSK handshakes per second, lwota beside a bare
// pion server and libcoap+OpenSSL. `--serve KIND` is the server child the benchmark starts.
func benchDTLSCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench dtls", stderr)
	clients := fs.String("clients", "1,16,64", "comma-separated numbers of devices handshaking at once, one run each")
	duration := fs.Duration("duration", 10*time.Second, "how long each run handshakes, per server")
	libcoap := fs.String("libcoap", "coap-server-openssl", "libcoap's DTLS server, run as a baseline; empty: skip it")
	cpuprofile := fs.String("cpuprofile", "", "write lwota's server CPU profile over all its runs to this file")
	memprofile := fs.String("memprofile", "", "write lwota's server allocation profile over all its runs to this file (every 4 KiB sampled)")
	serve := fs.String("serve", "", "internal: serve DTLS as lwota or pion until stdin closes (the benchmark's server child)")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	if *serve != "" {
		return serveDTLSBenchChild(ctx, *serve, benchProfiles{cpu: *cpuprofile, mem: *memprofile}, stdout)
	}
	var counts []int
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bench dtls: --clients: %q is not a client count", f)
		}
		counts = append(counts, n)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return BenchDTLSHandshakes(ctx, stdout, stderr, dtlsBenchConfig{Clients: counts, Duration: *duration,
		Libcoap: *libcoap, Profiles: benchProfiles{cpu: *cpuprofile, mem: *memprofile}, self: dtlsBenchSelf{exe: exe}})
}

// dtlsBenchConfig is what BenchDTLSHandshakes runs.
type dtlsBenchConfig struct {
	Clients  []int         // concurrent clients, one run each
	Duration time.Duration // per run and server
	Libcoap  string        // libcoap's DTLS server binary; empty: no libcoap baseline
	Profiles benchProfiles // lwota's server CPU and allocation profiles, over all its runs
	self     dtlsBenchSelf // how to start this binary as a server child
}

// BenchDTLSHandshakes measures full DTLS 1.2 PSK handshakes (cookie exchange included,
// TLS_PSK_WITH_AES_128_CCM_8, pion's client) against three servers in child processes of their
// own: lwota's DTLS Endpoint with its defaults, a bare pion/dtls server and libcoap's
// coap-server-openssl. At each count of concurrent clients, for d per server, every client
// handshakes from a new socket, closes the session and starts over. The servers' CPU time is
// read from /proc, so the clients' CPU is not counted; lwota's CPU per handshake is printed as
// ratios to libcoap's and to bare pion's of the same run.
func BenchDTLSHandshakes(ctx context.Context, w, stderr io.Writer, cfg dtlsBenchConfig) error {
	var servers []*dtlsBenchServer
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, kind := range []string{"lwota", "pion"} {
		var prof benchProfiles
		if kind == "lwota" {
			prof = cfg.Profiles
		}
		s, err := startDTLSBenchChild(ctx, cfg.self, kind, prof, stderr)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	if cfg.Libcoap != "" {
		s, err := startLibcoapDTLS(ctx, cfg.Libcoap, stderr)
		if err != nil {
			fmt.Fprintf(w, "baseline: libcoap %s: skipped: %v\n", cfg.Libcoap, err)
		} else {
			servers = append(servers, s)
		}
	}
	fmt.Fprintf(w, "dtls handshakes: PSK, AES_128_CCM_8, cookie exchange, pion clients on a new socket each; %v per run and server; server CPU from /proc (clients not counted); lwota's server with lwota serve's GC headroom (%s), bare pion without\n", cfg.Duration, formatByteSize(defaultGCHeadroom))
	fmt.Fprintf(w, "%8s %8s %14s %12s %10s %8s\n", "clients", "server", "handshakes/s", "cpu us/hs", "total", "errors")
	for _, c := range cfg.Clients {
		perHS := map[string]float64{}
		for _, s := range servers {
			cpuStart := s.cpu()
			rep, err := lwm2mtest.DTLSHandshakes(ctx, s.addr, c, cfg.Duration, benchPSK)
			if err != nil {
				return err
			}
			cpu := s.cpu() - cpuStart
			if rep.Handshakes > 0 {
				perHS[s.name] = float64(cpu.Microseconds()) / float64(rep.Handshakes)
			}
			fmt.Fprintf(w, "%8d %8s %14.0f %12.0f %10d %8d\n", c, s.name, rep.PerSec, perHS[s.name], rep.Handshakes, rep.Errors)
			if rep.FirstError != "" {
				fmt.Fprintf(w, "%8s first error: %s\n", "", rep.FirstError)
			}
		}
		fmt.Fprintf(w, "%8d lwota server CPU per handshake: %s of libcoap+OpenSSL's (goal <= 1.2x), %s of bare pion's (goal <= 1.0x)\n",
			c, ratioText(perHS["lwota"], perHS["libcoap"]), ratioText(perHS["lwota"], perHS["pion"]))
	}
	return nil
}

// ratioText is a/b as "1.23x", or "n/a" without both figures.
func ratioText(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
