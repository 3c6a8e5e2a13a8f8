package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
	"github.com/prometheus/client_golang/prometheus"
)

// benchFleetDTLS measures the memory of cfg.DTLSSessions idle DTLS PSK sessions held by a
// transport DTLS Endpoint in this process (lwota's defaults, the idle timeout raised so that no
// session is closed while the others handshake). The clients run in child processes (`lwota
// bench fleet-dtls`) of at most cfg.DTLSPerChild sessions each: a pion client holds a socket, and
// a process may not open more than 20,000 files here (ulimit -Hn). They start one after the
// other, each once the previous one is ready, so that the handshakes never queue up past the
// endpoint's handshake limit; cfg.DTLSSetupTimeout bounds the whole setup.
func benchFleetDTLS(ctx context.Context, cfg fleetBenchConfig, stdout, stderr io.Writer) error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dc := transport.DTLSConfig{PSK: benchPSKs{}, IdleTimeout: time.Hour, MaxSessions: cfg.DTLSSessions + 1024, HibernateAfter: cfg.HibernateAfter}
	reg := prometheus.NewRegistry()
	ep, err := transport.NewDTLS(pc, nil, transport.DefaultConfig(), dc, nil, reg)
	if err != nil {
		pc.Close()
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- ep.Serve(sctx) }()
	stopEndpoint := sync.OnceFunc(func() { cancel(); <-served })
	defer stopEndpoint()
	heap0, rss0 := memNow()
	g0 := runtime.NumGoroutine()

	kids, err := newBenchChildren()
	if err != nil {
		return err
	}
	defer kids.stop() // before the endpoint stops (deferred earlier): no client outlives the bench
	start := time.Now()
	setup, endSetup := context.WithTimeout(ctx, cfg.DTLSSetupTimeout)
	defer endSetup()
	// A setup past its bound kills the children: their report lines end, and the loop below with them.
	stopKilling := context.AfterFunc(setup, kids.kill)
	procs := (cfg.DTLSSessions + cfg.DTLSPerChild - 1) / cfg.DTLSPerChild
	for p, first := 0, 0; first < cfg.DTLSSessions; p, first = p+1, first+cfg.DTLSPerChild {
		k := min(cfg.DTLSPerChild, cfg.DTLSSessions-first)
		pid, lines, err := kids.start(ctx, stderr, "bench", "fleet-dtls", "--server", pc.LocalAddr().String(),
			"--sessions", fmt.Sprint(k), "--first", fmt.Sprint(first), "--total", fmt.Sprint(cfg.DTLSSessions), "--until-stdin-closes")
		if err != nil {
			return fmt.Errorf("bench fleet: start dtls clients: %w", err)
		}
		fmt.Fprintf(stdout, "dtls: client process %d of %d (pid %d): sessions %d to %d\n", p+1, procs, pid, first, first+k-1)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				if setup.Err() != nil && ctx.Err() == nil {
					return fmt.Errorf("bench fleet: %d DTLS sessions not set up within --dtls-setup-timeout %s (sessions from %d on missing)",
						cfg.DTLSSessions, cfg.DTLSSetupTimeout, first)
				}
				return fmt.Errorf("bench fleet: dtls clients (pid %d) ended: %w", pid, err)
			}
			if strings.HasPrefix(line, "ready ") {
				break
			}
			fmt.Fprintf(stdout, "dtls: %s", line)
		}
	}
	if !stopKilling() {
		return fmt.Errorf("bench fleet: %d DTLS sessions not set up within --dtls-setup-timeout %s", cfg.DTLSSessions, cfg.DTLSSetupTimeout)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "dtls: %d sessions from %d client processes in %s (%.0f handshakes/s)\n",
		cfg.DTLSSessions, procs, took.Round(time.Second), float64(cfg.DTLSSessions)/took.Seconds())
	time.Sleep(time.Second) // the last sessions' Finished flights settle

	hibernated := func() float64 { return counterValue(reg, "lwota_transport_dtls_sessions_hibernated_total") }
	n := float64(cfg.DTLSSessions)
	measure := func() (rss, heap, goroutines float64) {
		heap1, rss1 := memNow()
		return float64(rss1 - rss0), float64(heap1 - heap0), float64(runtime.NumGoroutine() - g0)
	}
	report := func(what string, rss, heap, goroutines float64) {
		fmt.Fprintf(stdout, "memory: %d idle DTLS PSK sessions, %s (transport only): %.0f B RSS and %.0f B live Go heap per session, %.1f goroutines per session; goal: <= 16384 B RSS\n",
			cfg.DTLSSessions, what, rss/n, heap/n, goroutines/n)
	}
	// The first sessions may be asleep already when the setup took longer than HibernateAfter:
	// the figure says how many, and the awake figure is derived from the asleep one below.
	asleepEarly := hibernated()
	rssA, heapA, gA := measure()
	peakGoroutines := runtime.NumGoroutine()
	what := "awake (their pion connections live)"
	if asleepEarly > 0 {
		what = fmt.Sprintf("awake but %.0f already asleep (the setup took longer than --dtls-hibernate-after)", asleepEarly)
	}
	report(what, rssA, heapA, gA)

	// Sessions sleep after DTLSConfig.HibernateAfter without a datagram (dtls_idle.go).
	hib := cfg.HibernateAfter
	deadline := time.Now().Add(hib + time.Minute)
	for hibernated() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench fleet: %.0f of %d DTLS sessions asleep after %s", hibernated(), cfg.DTLSSessions, hib+time.Minute)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	rssS, heapS, gS := measure()
	report(fmt.Sprintf("asleep after %s", hib), rssS, heapS, gS)
	if asleepEarly > 0 && asleepEarly < n {
		// awake measure = awake sessions * per awake + early sleepers * per sleeping
		awake := n - asleepEarly
		fmt.Fprintf(stdout, "memory: %.0f idle DTLS PSK sessions awake (derived from the two figures above): %.0f B RSS and %.0f B live Go heap per session\n",
			awake, (rssA-asleepEarly*rssS/n)/awake, (heapA-asleepEarly*heapS/n)/awake)
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile + ".dtls"); err != nil {
			return err
		}
	}
	// What the ended sessions leave: their devices gone, the endpoint stopped. The runtime keeps
	// the descriptor of every goroutine it ever ran at once for reuse (golang/go#9869, ~490 B
	// each), so the heap stays above its start by about that much; the sessions themselves
	// leave nothing (server/transport TestDTLSSessionsReleasedWhenEndpointStops).
	kids.stop()
	stopEndpoint()
	heapE, _ := memNow()
	fmt.Fprintf(stdout, "memory: after the %d DTLS sessions and their endpoint ended: %+d KiB live Go heap since the start (%.0f B per session); "+
		"the runtime keeps the descriptors of the %d goroutines it ran at the peak (golang/go#9869)\n",
		cfg.DTLSSessions, (heapE-heap0)>>10, float64(heapE-heap0)/n, peakGoroutines)
	return nil
}

// benchChildren are the child processes of a bench. Each reads its stdin, a pipe whose only
// writer is this process, and ends when it closes (--until-stdin-closes): the kernel closes it
// when this process ends, however it ends, so that no child outlives the bench even when it
// was killed with SIGKILL and had no chance to kill them.
type benchChildren struct {
	stdin *os.File // the children's end of the pipe
	keep  *os.File // this process's end, never written

	mu   sync.Mutex
	cmds []*exec.Cmd
}

func newBenchChildren() (*benchChildren, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bench: children's pipe: %w", err)
	}
	return &benchChildren{stdin: r, keep: w}, nil
}

// start starts this binary with args; ctx ending kills it. It returns its pid and its stdout.
func (b *benchChildren) start(ctx context.Context, stderr io.Writer, args ...string) (int, *bufio.Reader, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdin = b.stdin
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.keep == nil {
		return 0, nil, errors.New("bench: children stopped")
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	b.cmds = append(b.cmds, cmd)
	return cmd.Process.Pid, bufio.NewReader(out), nil
}

// kill kills every child started so far; stop still waits for them.
func (b *benchChildren) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.cmds {
		_ = c.Process.Kill()
	}
}

// stop ends every child and waits for it; no child starts after it.
func (b *benchChildren) stop() {
	b.mu.Lock()
	cmds := b.cmds
	b.cmds = nil
	if b.keep != nil {
		b.keep.Close()
		b.stdin.Close()
		b.keep = nil
	}
	b.mu.Unlock()
	for _, c := range cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// syncWriter serialises the writes of several writers (child processes' copying goroutines,
// loggers) to one io.Writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// untilStdinCloses returns a context that ends with ctx or once stdin reads to its end: a child
// of benchChildren ends with its parent.
func untilStdinCloses(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

// dtlsPortsPerAddr is how many DTLS client sockets bind one loopback address, on ports from
// fleetBasePort.
const dtlsPortsPerAddr = 10000

// benchFleetDTLSClients is the hidden `lwota bench fleet-dtls`: it opens idle DTLS sessions,
// says "ready N" and holds them until it is killed, or its stdin closes (--until-stdin-closes).
func benchFleetDTLSClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench fleet-dtls", stderr)
	server := fs.String("server", "", "the DTLS endpoint's address")
	sessions := fs.Int("sessions", 1000, "sessions")
	first := fs.Int("first", 0, "the first session's number: its PSK identity is bench-N")
	total := fs.Int("total", 0, "the sessions of every client process, for the progress lines (0: first+sessions)")
	concurrency := fs.Int("concurrency", 32, "handshakes at once")
	untilStdin := fs.Bool("until-stdin-closes", false, "end when stdin closes (the parent bench ended)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *untilStdin {
		var cancel context.CancelFunc
		ctx, cancel = untilStdinCloses(ctx)
		defer cancel()
	}
	if *total == 0 {
		*total = *first + *sessions
	}
	raiseOpenFiles()
	start := time.Now()
	psk := func(i int) lwm2mtest.PSK { return benchPSK(*first + i) }
	// Sockets on 127.78.A.B, 10,000 a loopback address, on ports below the ephemeral range
	// (OpenDTLSSessions says why).
	from := func(i int) netip.AddrPort {
		k := *first + i
		a := netip.AddrFrom4([4]byte{127, 78, 0, 1})
		for range k / dtlsPortsPerAddr {
			a = a.Next()
		}
		return netip.AddrPortFrom(a, uint16(fleetBasePort+k%dtlsPortsPerAddr))
	}
	s, err := lwm2mtest.OpenDTLSSessions(ctx, *server, *sessions, *concurrency, psk, from, max(*sessions/5, 100), func(done int) {
		fmt.Fprintf(stdout, "%d of %d sessions after %s\n", *first+done, *total, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "ready %d\n", s.Len())
	<-ctx.Done()
	return nil
}
