package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// benchService is lwota serve running in this process for a benchmark, over a data directory of
// its own.
type benchService struct {
	*service
	cfg  serveConfig
	stop func() // stops the server, waits for it and removes its data directory; once
}

// startBenchService starts lwota serve in this process with args (plus a fresh data directory),
// tweak applied to the parsed configuration (nil: none), logging at level to stderr; it returns
// once the server is ready. what names the benchmark in errors.
func startBenchService(ctx context.Context, what string, args []string, tweak func(*serveConfig), level slog.Level, stderr io.Writer) (*benchService, error) {
	dir, err := os.MkdirTemp("", "lwota-bench-"+what+"-")
	if err != nil {
		return nil, err
	}
	sc, err := parseServeFlags(append(args, "--data-dir", dir, "--log-level", "warn"), stderr, func(string) string { return "" })
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if tweak != nil {
		tweak(&sc)
	}
	svc, err := newService(ctx, sc, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	// The process runs what `lwota serve` runs, GC headroom included; it ends with runCtx.
	startGCHeadroom(runCtx, sc.GCHeadroom, os.Getenv)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	stop := sync.OnceFunc(func() { cancel(); <-done; os.RemoveAll(dir) })
	select {
	case <-svc.ready:
	case err := <-done:
		done <- err
		stop()
		return nil, fmt.Errorf("bench %s: server: %w", what, err)
	}
	return &benchService{service: svc, cfg: sc, stop: stop}, nil
}
