package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lwota/lwota/api"
	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/storage/sqlstore"
)

// serveConfig is everything `lwota serve` reads from flags and LWOTA_* variables.
type serveConfig struct {
	CoAPAddr    string
	HTTPAddr    string
	DataDir     string
	Database    string
	ObjectsDir  string
	LogFormat   string
	LogLevel    string
	AwakeWindow time.Duration
	MaxQueued   int
	Core        server.Config
}

func parseServeFlags(args []string, stderr io.Writer, getenv func(string) string) (serveConfig, error) {
	c := serveConfig{Core: server.DefaultConfig()}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.CoAPAddr, "coap-addr", ":5683", "UDP address for CoAP (devices)")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "TCP address for the REST API, /metrics and health checks")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded SQLite database and local images")
	fs.StringVar(&c.Database, "database", "", "SQLite file path or postgres:// URL (default: DATA_DIR/lwota.db)")
	fs.StringVar(&c.ObjectsDir, "objects-dir", "", "directory of OMA DDF XML files with extra object definitions")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.AwakeWindow, "awake-window", c.Core.DM.AwakeWindow, "how long a queue-mode device listens after it last talked (MAX_TRANSMIT_WAIT)")
	fs.IntVar(&c.MaxQueued, "max-queued", c.Core.DM.MaxQueued, "requests that may wait for one sleeping device")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected arguments %v", fs.Args())
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "lwota.db")
	}
	c.Core.CoAPAddr = c.CoAPAddr
	c.Core.DM.AwakeWindow = c.AwakeWindow
	c.Core.DM.MaxQueued = c.MaxQueued
	return c, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	svc, err := newService(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// service is one lwota process: the LwM2M core, the REST API and their shared store.
type service struct {
	cfg     serveConfig
	log     *slog.Logger
	store   *sqlstore.Store
	core    *server.Server
	http    *http.Server
	httpLn  net.Listener
	metrics *prometheus.Registry
	ready   chan struct{}
}

func newService(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*service, error) {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "images"), 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	store, err := sqlstore.Open(ctx, cfg.Database, logger.With("component", "storage"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	model := lwm2m.NewModel()
	if cfg.ObjectsDir != "" {
		n, err := model.LoadDDFDir(cfg.ObjectsDir)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("load object definitions: %w", err)
		}
		logger.Info("object definitions loaded", "dir", cfg.ObjectsDir, "objects", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bus := events.NewBus(256)
	core := server.New(cfg.Core, store, model, bus, logger, reg)

	a := api.New(api.DefaultConfig(), core, core, core, model, core, logger.With("component", "api"))
	s := &service{cfg: cfg, log: logger, store: store, core: core, metrics: reg, ready: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/readyz", s.readyz)
	mux.Handle("/", a.Handler())
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func (s *service) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	select {
	case <-s.ready:
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"starting"}`)
	}
}

// Run serves CoAP and HTTP until ctx ends, then shuts both down gracefully.
func (s *service) Run(ctx context.Context) error {
	defer s.store.Close()
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- s.core.Run(ctx)
		cancel()
	}()
	go func() {
		defer wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("http: %w", err)
			cancel()
		}
	}()
	select {
	case <-s.core.Ready():
		s.log.Info("lwota ready", "coap", s.core.Addr().String(), "http", ln.Addr().String(), "database", redactDSN(s.cfg.Database))
		close(s.ready)
	case <-ctx.Done():
	}
	<-ctx.Done()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = s.http.Shutdown(shutdownCtx)
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	s.log.Info("lwota stopped")
	return first
}

// redactDSN keeps passwords out of logs.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return dsn
}
