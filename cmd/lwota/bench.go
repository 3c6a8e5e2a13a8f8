package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

type benchConfig struct {
	Devices     int
	Concurrency int
	Database    string
	EchoFor     time.Duration
	CPUProfile  string
	// ReadDeviceInfo keeps the server's read of /3/0 after each Register; off measures bare
	// registration.
	ReadDeviceInfo bool
}

func parseBenchFlags(args []string, stderr io.Writer, getenv func(string) string) (benchConfig, error) {
	var c benchConfig
	fs := newFlagSet("bench", stderr)
	fs.IntVar(&c.Devices, "devices", 10000, "emulated devices that register")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "registrations in flight at once (and echo clients for the baseline)")
	fs.StringVar(&c.Database, "database", "", "database for the server under test (default: a fresh SQLite file)")
	fs.DurationVar(&c.EchoFor, "echo-for", 3*time.Second, "how long the raw UDP echo baseline runs")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the server's CPU profile during registration to this file")
	fs.BoolVar(&c.ReadDeviceInfo, "read-device-info", true, "the server reads /3/0 from each device after it registers, as lwota serve does; false measures bare registration")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	return c, nil
}

// bench measures registrations per second and server heap per registered device, with the
// emulated fleet in a child process so that its memory is not counted as the server's.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "pull" {
		return benchPullCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dtls" {
		return benchDTLSCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bootstrap" {
		return benchBootstrapCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "campaign" {
		return benchCampaignCommand(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseBenchFlags(args, stderr, os.Getenv)
	if err != nil {
		return asUsage(err)
	}
	echo, err := lwm2mtest.UDPEcho(ctx, cfg.Concurrency, cfg.EchoFor)
	if err != nil {
		return fmt.Errorf("bench: echo baseline: %w", err)
	}
	fmt.Fprintf(stdout, "baseline: raw UDP echo (20 B request, 1 KiB response), %d clients: %.0f round trips/s\n", cfg.Concurrency, echo)

	dir, err := os.MkdirTemp("", "lwota-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sc, err := parseServeFlags([]string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "", "--allow-nosec", "--http-addr", "127.0.0.1:0", "--data-dir", dir, "--log-level", "warn",
		fmt.Sprintf("--read-device-info=%t", cfg.ReadDeviceInfo)}, stderr, func(string) string { return "" })
	if err != nil {
		return err
	}
	if cfg.Database != "" {
		sc.Database = cfg.Database
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := newService(ctx, sc, logger)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	select {
	case <-svc.core.Ready():
	case err := <-done:
		return fmt.Errorf("bench: server: %w", err)
	}
	heapBefore := liveHeap()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.CommandContext(runCtx, exe, "sim", "--server", svc.core.Addr().String(), "--count", fmt.Sprint(cfg.Devices),
		"--concurrency", fmt.Sprint(cfg.Concurrency), "--lifetime", "1h", "--prefix", "bench-")
	child.Stderr = stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return fmt.Errorf("bench: start sim: %w", err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("bench: sim ended before registering: %w", err)
	}
	var n int
	var took string
	var rate float64
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "registered %d devices in %s (%f registrations/s)", &n, &took, &rate); err != nil {
		return fmt.Errorf("bench: unexpected sim output %q: %w", line, err)
	}
	if got := svc.core.Registry().Count(); got != cfg.Devices {
		return fmt.Errorf("bench: server holds %d registrations, want %d", got, cfg.Devices)
	}
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	heapAfter := liveHeap()
	perDevice := float64(int64(heapAfter)-int64(heapBefore)) / float64(cfg.Devices)
	fmt.Fprintf(stdout, "registrations: %d devices in %s: %.0f registrations/s (%.3f of the echo baseline)\n", n, took, rate, rate/echo)
	fmt.Fprintf(stdout, "server heap: %.0f bytes per idle registered device (%d -> %d bytes live heap)\n", perDevice, heapBefore, heapAfter)
	stop()
	<-done
	return nil
}

// liveHeap is the heap still in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchPullCommand is `lwota bench pull`: firmware pull throughput over CoAP Block2 at several
// device counts, as a ratio to a raw UDP echo measured in the same run.
func benchPullCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench pull", stderr)
	devices := fs.String("devices", "16,64,1000", "comma-separated device counts, one run each")
	duration := fs.Duration("duration", 60*time.Second, "how long each run pulls")
	withDTLS := fs.Bool("dtls", false, "also pull over CoAP over DTLS (PSK) at each device count, as a ratio to plain CoAP")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	var counts []int
	for _, f := range strings.Split(*devices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bench pull: --devices: %q is not a device count", f)
		}
		counts = append(counts, n)
	}
	return BenchPull(ctx, stdout, counts, *duration, *withDTLS)
}
