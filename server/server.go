package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Store is everything the core persists.
type Store interface {
	registration.Store
	dm.QueueStore
	observe.Store
}

// Server is a running LwM2M server. Build it with New, then Run it.
type Server struct {
	cfg   Config
	store Store
	model *lwm2m.Model
	bus   *events.Bus
	log   *slog.Logger
	reg   prometheus.Registerer

	registry *registration.Registry
	dm       *dm.Client
	observe  *observe.Manager

	mu       sync.Mutex
	endpoint *transport.Endpoint
	ready    chan struct{}
	// runCtx lives as long as Run; background work started by device events hangs off it.
	runCtx context.Context
}

// New builds a server over store. bus may be nil (events are then dropped); reg may be nil.
func New(cfg Config, store Store, model *lwm2m.Model, bus *events.Bus, logger *slog.Logger, reg prometheus.Registerer) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if bus == nil {
		bus = events.NewBus(1)
	}
	s := &Server{cfg: cfg, store: store, model: model, bus: bus, log: logger, reg: reg, ready: make(chan struct{}), runCtx: context.Background()}
	s.registry = registration.New(store, s, cfg.Registration, logger.With("component", "registration"), registration.NewMetrics(reg), nil)
	return s
}

// Run listens, restores state and serves until ctx ends; then it shuts down and returns.
func (s *Server) Run(ctx context.Context) error {
	conn, err := net.ListenPacket("udp", s.cfg.CoAPAddr)
	if err != nil {
		return fmt.Errorf("listen coap %s: %w", s.cfg.CoAPAddr, err)
	}
	ep, err := transport.New(conn, transport.UDP, transport.HandlerFunc(s.serveCoAP), s.cfg.Transport, s.log.With("component", "transport"), s.reg)
	if err != nil {
		conn.Close()
		return fmt.Errorf("coap transport: %w", err)
	}
	obs := observe.New(s.store, ep, s.model, s.bus, s, s.log.With("component", "observe"), nil)
	client := dm.New(ep, s.registry, obs, s.store, s.model, s, s.bus, s.cfg.DM, s.log.With("component", "dm"), nil)
	obs.SetRequester(client)

	regs, err := s.registry.Load(ctx)
	if err != nil {
		conn.Close()
		return err
	}
	nobs, err := obs.Load(ctx)
	if err != nil {
		conn.Close()
		return err
	}
	s.mu.Lock()
	s.endpoint = ep
	s.runCtx = ctx
	s.dm, s.observe = client, obs
	s.mu.Unlock()
	s.log.Info("coap listening", "addr", conn.LocalAddr().String(), "registrations", regs, "observations", nobs)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.registry.RunExpiry(ctx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- ep.Serve(ctx) }()
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	ep.Close()
	if runErr == nil {
		runErr = <-serveErr
	}
	wg.Wait()
	client.Wait()
	obs.Wait()
	if errors.Is(runErr, context.Canceled) || errors.Is(runErr, transport.ErrClosed) {
		runErr = nil
	}
	return runErr
}

// Ready is closed once the server listens and has restored its state.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the CoAP address; valid once Ready is closed.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoint == nil {
		return nil
	}
	return s.endpoint.LocalAddr()
}

// serveCoAP routes device requests. Every uplink counts as a sign of life for queue mode.
func (s *Server) serveCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	if ep, woke := s.registry.Seen(from.Addr, s.cfg.DM.AwakeWindow); woke && ep != "" {
		if client, _, err := s.running(); err == nil {
			client.Woke(s.background(), ep)
		}
	}
	if req.Path == "/rd" || strings.HasPrefix(req.Path, "/rd/") {
		return s.registry.ServeCoAP(ctx, from, req)
	}
	resp := transport.NewMessage(transport.NotFound)
	resp.ContentFormat = 0
	resp.Payload = []byte("no such resource")
	return resp
}

func (s *Server) background() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runCtx
}

// ErrNotRunning is returned by device operations before Run has made the server ready.
var ErrNotRunning = fmt.Errorf("server: %w", dm.ErrUnavailable)

// running returns the parts that exist only while Run runs.
func (s *Server) running() (*dm.Client, *observe.Manager, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dm == nil {
		return nil, nil, ErrNotRunning
	}
	return s.dm, s.observe, nil
}

// Registered implements registration.Listener.
func (s *Server) Registered(r *registration.Registration, previous *registration.Registration) {
	s.bus.Publish(events.Event{Type: events.TypeRegistered, Endpoint: r.Endpoint, Time: r.RegisteredAt, Data: r})
	if client, obs, err := s.running(); err == nil {
		ctx := s.background()
		obs.Reestablish(ctx, r.Endpoint)
		client.Woke(ctx, r.Endpoint)
	}
}

// Updated implements registration.Listener.
func (s *Server) Updated(r *registration.Registration) {
	s.bus.Publish(events.Event{Type: events.TypeUpdated, Endpoint: r.Endpoint, Time: r.UpdatedAt, Data: r})
	if client, _, err := s.running(); err == nil {
		client.Woke(s.background(), r.Endpoint)
	}
}

// Deregistered implements registration.Listener.
func (s *Server) Deregistered(r *registration.Registration, expired bool) {
	typ := events.TypeDeregistered
	if expired {
		typ = events.TypeExpired
	}
	s.bus.Publish(events.Event{Type: typ, Endpoint: r.Endpoint, Time: time.Now(), Data: r})
}

var firmwareVersionPath = lwm2m.MustParsePath("/3/0/3")

// Values keeps the firmware version a device reports in any answer or notification.
func (s *Server) Values(ctx context.Context, endpoint string, recs []lwm2m.Record) {
	for _, r := range recs {
		if r.Path == firmwareVersionPath && r.Value.Type == lwm2m.TypeString {
			if err := s.registry.SetFirmwareVersion(ctx, endpoint, r.Value.Str); err != nil {
				s.log.Warn("keep firmware version", "endpoint", endpoint, "err", err)
			}
		}
	}
}

// Device returns the registration of endpoint: the live one, else the last one stored.
func (s *Server) Device(ctx context.Context, endpoint string) (*registration.Registration, error) {
	if r, ok := s.registry.Get(endpoint); ok {
		return r, nil
	}
	r, err := s.store.GetRegistration(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", endpoint, err)
	}
	return r, nil
}

// ListDevices lists registrations matching f, with live data for devices registered now.
func (s *Server) ListDevices(ctx context.Context, f registration.Filter) ([]*registration.Registration, error) {
	if f.Now.IsZero() {
		f.Now = time.Now()
	}
	regs, err := s.store.ListRegistrations(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	for i, r := range regs {
		if live, ok := s.registry.Get(r.Endpoint); ok && live.ID == r.ID {
			regs[i] = live
		}
	}
	return regs, nil
}

// Do runs a device-management request (see dm.Client.Do).
func (s *Server) Do(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	client, _, err := s.running()
	if err != nil {
		return nil, nil, err
	}
	return client.Do(ctx, endpoint, req)
}

// Pending returns a queued request.
func (s *Server) Pending(ctx context.Context, id string) (*dm.Pending, error) {
	return s.store.GetPending(ctx, id)
}

// Observations lists the observations held on endpoint.
func (s *Server) Observations(ctx context.Context, endpoint string) ([]*observe.Observation, error) {
	return s.store.Observations(ctx, endpoint)
}

// Latest lists endpoint's latest notified values.
func (s *Server) Latest(ctx context.Context, endpoint string) ([]*observe.Latest, error) {
	return s.store.LatestFor(ctx, endpoint)
}

// Subscribe streams server events until ctx ends.
func (s *Server) Subscribe(ctx context.Context) <-chan events.Event { return s.bus.Subscribe(ctx) }

// Registry exposes the registration index (counts, lookups) to in-process callers and tests.
func (s *Server) Registry() *registration.Registry { return s.registry }
