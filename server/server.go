package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/send"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/transport/tcp"
)

// Store is everything the core persists.
type Store interface {
	registration.Store
	registration.LabelStore
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

	registry  *registration.Registry
	dmMetrics *dm.Metrics // made with the server, so that every series exists before Run
	dm        *dm.Client
	observe   *observe.Manager
	send      *send.Handler // POST /dp

	creds   Credentials
	routes  []route // Handle: extra CoAP resources, fixed before Run
	cluster Cluster // SetCluster; nil on a single node

	mu       sync.Mutex
	endpoint *transport.Endpoint
	secure   *transport.Endpoint // DTLS; nil without CoAPSAddr
	tcp      *tcp.Endpoint       // coap+tcp; nil without CoAPTCPAddr
	tls      *tcp.Endpoint       // coaps+tcp; nil without CoAPSTCPAddr
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
	s.registry.SetAuthorizer(s)
	s.dmMetrics = dm.NewMetrics(reg)
	s.send = send.New(s.registry, store, model, s, bus, cfg.Send, logger.With("component", "send"), reg, nil)
	if cfg.ReadDeviceInfo {
		s.registry.SetInfoReader(s)
	}
	return s
}

// Credentials are the devices' DTLS PSK credentials (credentials.Manager implements it).
type Credentials interface {
	transport.PSKStore
	// EndpointFor returns the endpoint name the PSK identity may register as.
	EndpointFor(ctx context.Context, identity string) (string, error)
	// HasCredential reports whether endpoint has a PSK credential (a DTLS device).
	HasCredential(ctx context.Context, endpoint string) (bool, error)
}

// route is a CoAP resource tree served next to /rd.
type route struct {
	prefix string
	h      transport.Handler
}

// Handle serves every device request whose path starts with prefix (such as "/fw/") with h, on
// plain CoAP and DTLS alike. Call it before Run; /rd belongs to the registry.
func (s *Server) Handle(prefix string, h transport.Handler) {
	s.routes = append(s.routes, route{prefix, h})
}

// SetAudit makes the server audit refusals that matter to security (a NoSec peer acting for a
// secured endpoint). Call it before Run.
func (s *Server) SetAudit(rec audit.Recorder) { s.registry.SetAudit(rec) }

// SetCredentials gives the server the PSK credentials DTLS handshakes and registrations are
// checked against. Call it before Run.
func (s *Server) SetCredentials(c Credentials) { s.creds = c }

// AuthorizeRegister implements registration.Authorizer: a NoSec peer registers (updates,
// de-registers) only when AllowNoSec is set, and never as an endpoint that has a PSK credential
// (the registry also refuses it for an endpoint registered over DTLS now); a DTLS peer only as
// the endpoint its PSK identity (or certificate name) is bound to.
func (s *Server) AuthorizeRegister(ctx context.Context, from transport.Peer, endpoint string) error {
	if noSecPeer(from) {
		if !s.cfg.AllowNoSec {
			return fmt.Errorf("%w: NoSec (plain CoAP) registration is disabled on this server; register over DTLS (coaps) with a PSK credential", registration.ErrForbidden)
		}
		if s.creds == nil {
			return nil
		}
		has, err := s.creds.HasCredential(ctx, endpoint)
		if err != nil {
			return fmt.Errorf("authorize %s: %w", endpoint, err)
		}
		if has {
			return fmt.Errorf("%w: %s has a PSK credential", registration.ErrSecuredEndpoint, endpoint)
		}
		return nil
	}
	if from.Identity == "" || s.creds == nil {
		return fmt.Errorf("%w: no PSK identity for this DTLS session", registration.ErrForbidden)
	}
	bound, err := s.creds.EndpointFor(ctx, from.Identity)
	if errors.Is(err, credentials.ErrNotFound) {
		return fmt.Errorf("%w: PSK identity %q has no credential any more", registration.ErrForbidden, from.Identity)
	}
	if err != nil {
		return fmt.Errorf("authorize %s: %w", endpoint, err)
	}
	if bound != endpoint {
		what := "PSK identity"
		if strings.HasPrefix(from.Identity, "x509:") {
			what = "certificate"
		}
		return fmt.Errorf("%w: %s %q may not register as endpoint %q", registration.ErrForbidden, what, from.Identity, endpoint)
	}
	return nil
}

// noSecPeer reports whether from is held to the NoSec rules: a plain CoAP peer, or a TLS device
// without a client certificate, which proved nothing about itself either.
func noSecPeer(from transport.Peer) bool {
	return !from.Addr.Network.Secure() || (from.Addr.Network == transport.TLS && from.Identity == "")
}

// FoldsNoSecCheck implements registration.NoSecFolder: AuthorizeRegister asks one thing of an
// allowed NoSec peer, whether the endpoint has a credential, and when the credentials live in
// store (the same database as the registrations) the store's touch of an Update asks it in its
// own write instead: atomic with it, and no read before it.
func (s *Server) FoldsNoSecCheck(from transport.Peer, store registration.NoSecToucher) bool {
	if !noSecPeer(from) || !s.cfg.AllowNoSec || s.creds == nil {
		return false
	}
	k, ok := s.creds.(interface{ KeptIn(store any) bool })
	return ok && k.KeptIn(store)
}

// Run listens, restores state and serves until ctx ends; then it shuts down and returns.
func (s *Server) Run(ctx context.Context) error {
	conn, err := net.ListenPacket("udp", s.cfg.CoAPAddr)
	if err != nil {
		return fmt.Errorf("listen coap %s: %w", s.cfg.CoAPAddr, err)
	}
	ep, err := transport.New(conn, transport.UDP, coreHandler{s}, s.cfg.Transport, s.log.With("component", "transport"), s.reg)
	if err != nil {
		conn.Close()
		return fmt.Errorf("coap transport: %w", err)
	}
	var secure *transport.Endpoint
	if s.cfg.CoAPSAddr != "" {
		if s.creds == nil {
			ep.Close()
			return errors.New("coaps: no credentials (SetCredentials)")
		}
		sconn, err := net.ListenPacket("udp", s.cfg.CoAPSAddr)
		if err != nil {
			ep.Close()
			return fmt.Errorf("listen coaps %s: %w", s.cfg.CoAPSAddr, err)
		}
		dcfg := s.cfg.DTLS
		dcfg.PSK = s.creds
		if dcfg.Node.ID != 0 { // a node of a cluster: records for it may arrive at other nodes
			if s.cfg.NodeRelayAddr == "" {
				sconn.Close()
				ep.Close()
				return errors.New("coaps: a node of a cluster (DTLS.Node.ID) needs NodeRelayAddr")
			}
			if dcfg.Node.Relay, err = net.ListenPacket("udp", s.cfg.NodeRelayAddr); err != nil {
				sconn.Close()
				ep.Close()
				return fmt.Errorf("listen node relay %s: %w", s.cfg.NodeRelayAddr, err)
			}
		}
		secure, err = transport.NewDTLS(sconn, coreHandler{s}, // inline-safe routes answered on the session (inline.go)
			s.cfg.Transport, dcfg, s.log.With("component", "transport", "network", "dtls"), s.reg)
		if err != nil {
			sconn.Close()
			if dcfg.Node.Relay != nil {
				dcfg.Node.Relay.Close()
			}
			ep.Close()
			return fmt.Errorf("coaps transport: %w", err)
		}
	}
	plainTCP, secureTCP, err := s.listenTCP()
	if err != nil {
		ep.Close()
		if secure != nil {
			secure.Close()
		}
		return err
	}
	closeAll := func() {
		ep.Close()
		if secure != nil {
			secure.Close()
		}
		for _, t := range []*tcp.Endpoint{plainTCP, secureTCP} {
			if t != nil {
				t.Close()
			}
		}
	}
	send := &sender{udp: ep, dtls: secure, tcp: plainTCP, tls: secureTCP}
	obs := observe.New(s.store, send, s.model, s.bus, s, s.log.With("component", "observe"), nil)
	client := dm.New(send, s.registry, obs, s.store, s.model, s, s.bus, s.cfg.DM, s.log.With("component", "dm"), s.dmMetrics, nil)
	obs.SetRequester(client)
	if err := client.LoadQueued(ctx); err != nil {
		closeAll()
		return err
	}

	regs, err := s.registry.Load(ctx)
	if err != nil {
		closeAll()
		return err
	}
	nobs, err := obs.Load(ctx)
	if err != nil {
		closeAll()
		return err
	}
	s.mu.Lock()
	s.endpoint = ep
	s.secure = secure
	s.tcp, s.tls = plainTCP, secureTCP
	s.runCtx = ctx
	s.dm, s.observe = client, obs
	s.mu.Unlock()
	s.log.Info("coap listening", "addr", conn.LocalAddr().String(), "registrations", regs, "observations", nobs)
	if secure != nil {
		s.log.Info("coaps listening", "addr", secure.LocalAddr().String(), "nosec", s.cfg.AllowNoSec)
	}
	for _, t := range []*tcp.Endpoint{plainTCP, secureTCP} {
		if t != nil {
			s.log.Info("coap over "+string(t.Network())+" listening", "addr", t.LocalAddr().String())
		}
	}
	if !s.cfg.AllowNoSec {
		s.log.Info("plain CoAP registrations are refused (NoSec disabled)")
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.registry.RunExpiry(ctx)
	}()
	if s.cfg.ReadDeviceInfo {
		wg.Go(func() { s.registry.RunInfoReads(ctx) })
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- ep.Serve(ctx) }()
	var secureErr chan error // nil without DTLS: never ready
	if secure != nil {
		secureErr = make(chan error, 1)
		go func() { secureErr <- secure.Serve(ctx) }()
	}
	var tcpWG sync.WaitGroup
	tcpErr := make(chan error, 2)
	for _, t := range []*tcp.Endpoint{plainTCP, secureTCP} {
		if t != nil {
			tcpWG.Go(func() {
				if err := t.Serve(ctx); err != nil {
					tcpErr <- fmt.Errorf("coap over %s: %w", t.Network(), err)
				}
			})
		}
	}
	close(s.ready)

	var runErr, secErr error
	udpDone, secDone := false, secure == nil
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		udpDone = true
	case secErr = <-secureErr:
		secDone = true
	case runErr = <-tcpErr:
	}
	closeAll()
	tcpWG.Wait()
	if !udpDone {
		if err := <-serveErr; runErr == nil {
			runErr = err
		}
	}
	if !secDone {
		secErr = <-secureErr
	}
	if ignorable(runErr) {
		runErr = nil
	}
	if runErr == nil && !ignorable(secErr) {
		runErr = fmt.Errorf("coaps: %w", secErr)
	}
	wg.Wait()
	client.Wait()
	obs.Wait()
	return runErr
}

func ignorable(err error) bool {
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrClosed)
}

// listenTCP opens the CoAP over TCP and TLS listeners the configuration names.
func (s *Server) listenTCP() (plain, secure *tcp.Endpoint, err error) {
	open := func(addr string, tc *tcp.TLSConfig) (*tcp.Endpoint, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		network := "tcp"
		if tc != nil {
			network = "tls"
		}
		ep, err := tcp.New(ln, tc, transport.HandlerFunc(s.serveCoAP), s.cfg.TCP, s.log.With("component", "transport", "network", network), s.reg)
		if err != nil {
			ln.Close()
			return nil, err
		}
		return ep, nil
	}
	if s.cfg.CoAPTCPAddr != "" {
		if plain, err = open(s.cfg.CoAPTCPAddr, nil); err != nil {
			return nil, nil, fmt.Errorf("listen coap+tcp %s: %w", s.cfg.CoAPTCPAddr, err)
		}
	}
	if s.cfg.CoAPSTCPAddr != "" {
		if s.cfg.TLS == nil {
			err = errors.New("coaps+tcp: no TLS certificate (Config.TLS)")
		} else if secure, err = open(s.cfg.CoAPSTCPAddr, s.cfg.TLS); err != nil {
			err = fmt.Errorf("listen coaps+tcp %s: %w", s.cfg.CoAPSTCPAddr, err)
		}
		if err != nil {
			if plain != nil {
				plain.Close()
			}
			return nil, nil, err
		}
	}
	return plain, secure, nil
}

// sender sends lwota's requests to a device through the endpoint it registered on: DTLS devices
// through the DTLS endpoint, TCP and TLS devices down their connection, the others through
// plain CoAP.
type sender struct {
	udp, dtls *transport.Endpoint
	tcp, tls  *tcp.Endpoint // nil without the listener
}

// client is what every endpoint offers for sending.
type client interface {
	Do(ctx context.Context, to transport.Addr, req *transport.Message) (*transport.Message, error)
	Upload(ctx context.Context, to transport.Addr, req *transport.Message, body io.ReaderAt, size int64, opts transport.UploadOptions) (*transport.Message, error)
	Listen(token []byte, fn func(from transport.Peer, msg *transport.Message)) (stop func())
}

func (s *sender) pick(n transport.Network) (client, error) {
	switch n {
	case transport.DTLS:
		if s.dtls != nil {
			return s.dtls, nil
		}
	case transport.TCP, transport.TLS:
		t := s.tcp
		if n == transport.TLS {
			t = s.tls
		}
		if t == nil {
			return nil, fmt.Errorf("no coap over %s listener: %w", n, tcp.ErrNotConnected)
		}
		return t, nil
	}
	return s.udp, nil
}

func (s *sender) Do(ctx context.Context, to transport.Addr, req *transport.Message) (*transport.Message, error) {
	c, err := s.pick(to.Network)
	if err != nil {
		return nil, err
	}
	return c.Do(ctx, to, req)
}

func (s *sender) Upload(ctx context.Context, to transport.Addr, req *transport.Message, body io.ReaderAt, size int64, opts transport.UploadOptions) (*transport.Message, error) {
	c, err := s.pick(to.Network)
	if err != nil {
		return nil, err
	}
	return c.Upload(ctx, to, req, body, size, opts)
}

// Reachable reports whether a request to to can leave now: over TCP and TLS only while the
// device's connection is open (dm treats a device without one as asleep and queues for it).
func (s *sender) Reachable(to transport.Addr) bool {
	c, err := s.pick(to.Network)
	if err != nil {
		return false
	}
	if t, ok := c.(*tcp.Endpoint); ok {
		return t.Connected(to)
	}
	return true
}

// SessionOf reports whether a request to to would go through a session of identity: over
// DTLS, unless another identity's session holds the address now. Other networks, and an
// address without a session (the send reports that), say yes.
func (s *sender) SessionOf(to transport.Addr, identity string) bool {
	if to.Network != transport.DTLS || s.dtls == nil {
		return true
	}
	got, ok := s.dtls.SessionIdentity(to.AddrPort)
	return !ok || got == identity
}

func (s *sender) NewToken() []byte { return s.udp.NewToken() }

// Listen routes token's messages from every endpoint to fn.
func (s *sender) Listen(token []byte, fn func(from transport.Peer, msg *transport.Message)) (stop func()) {
	stops := []func(){s.udp.Listen(token, fn)}
	if s.dtls != nil {
		stops = append(stops, s.dtls.Listen(token, fn))
	}
	for _, t := range []*tcp.Endpoint{s.tcp, s.tls} {
		if t != nil {
			stops = append(stops, t.Listen(token, fn))
		}
	}
	return func() {
		for _, st := range stops {
			st()
		}
	}
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

// CoAPSAddr is the CoAP over DTLS address; nil without DTLS or before Ready is closed.
func (s *Server) CoAPSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secure == nil {
		return nil
	}
	return s.secure.LocalAddr()
}

// CoAPTCPAddr is the CoAP over TCP address; nil without it or before Ready is closed.
func (s *Server) CoAPTCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.LocalAddr()
}

// CoAPSTCPAddr is the CoAP over TLS address; nil without it or before Ready is closed.
func (s *Server) CoAPSTCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tls == nil {
		return nil
	}
	return s.tls.LocalAddr()
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
	if req.Path == send.Path {
		return s.send.ServeCoAP(ctx, from, req)
	}
	for _, r := range s.routes {
		if strings.HasPrefix(req.Path, r.prefix) {
			return r.h.ServeCoAP(ctx, from, req)
		}
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
	if s.cluster != nil {
		s.cluster.Heard(r.Endpoint) // stored with its owner row: this node owns it now
	}
	s.bus.Publish(events.Event{Type: events.TypeRegistered, Endpoint: r.Endpoint, Time: r.RegisteredAt, Data: r})
	if client, obs, err := s.running(); err == nil {
		ctx := s.background()
		obs.Reestablish(ctx, r.Endpoint)
		client.Woke(ctx, r.Endpoint)
	}
}

// Updated implements registration.Listener.
func (s *Server) Updated(r *registration.Registration) {
	if s.cluster != nil {
		s.cluster.Heard(r.Endpoint)
	}
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

// Values keeps the identity a device reports in any answer or notification (manufacturer,
// model, firmware version, device type: see registration.Registry.RecordDeviceInfo).
func (s *Server) Values(ctx context.Context, endpoint string, recs []lwm2m.Record) {
	// What the device said is kept even when the request that heard it was cancelled just after
	// (a job step interrupted by the device's new registration).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.registry.RecordDeviceInfo(ctx, endpoint, recs); err != nil {
		s.log.Warn("keep device info", "endpoint", endpoint, "err", err)
	}
}

// ReadDeviceInfo implements registration.InfoReader: a Read of path on a device that is awake
// now. The answer reaches Values too, which only logs a failed save; keeping the answer here
// as well (nothing to write when Values kept it) makes that failure the read's, so the registry
// reads again later instead of leaving the stored firmware version stale (seen under a store
// overloaded by 250,000 devices' Updates, and in a loaded CI run).
func (s *Server) ReadDeviceInfo(ctx context.Context, endpoint string, path lwm2m.Path) error {
	res, err := s.DoNow(ctx, endpoint, dm.Request{Op: dm.OpRead, Path: path})
	if err != nil {
		return err
	}
	return s.registry.RecordDeviceInfo(ctx, endpoint, res.Records)
}

// Device returns the registration of endpoint with its labels: the live one, else the last one
// stored.
func (s *Server) Device(ctx context.Context, endpoint string) (*registration.Registration, error) {
	if r, ok := s.registry.Get(endpoint); ok {
		labels, err := s.store.Labels(ctx, endpoint)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", endpoint, err)
		}
		if len(labels) > 0 {
			cp := *r // live registrations are shared snapshots
			cp.Labels = labels
			r = &cp
		}
		return r, nil
	}
	r, err := s.store.GetRegistration(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", endpoint, err)
	}
	return r, nil
}

// ListDevices lists registrations matching f with their labels, with live data for devices
// registered now.
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
			if r.Labels != nil {
				cp := *live
				cp.Labels = r.Labels
				live = &cp
			}
			regs[i] = live
		}
	}
	return regs, nil
}

// CountDevices counts the registrations matching f (cursor, limit and sort aside), when the store
// can count them; errors.ErrUnsupported otherwise.
func (s *Server) CountDevices(ctx context.Context, f registration.Filter) (int, error) {
	c, ok := s.store.(registration.Counter)
	if !ok {
		return 0, fmt.Errorf("count devices: %w", errors.ErrUnsupported)
	}
	if f.Now.IsZero() {
		f.Now = time.Now()
	}
	n, err := c.CountRegistrations(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("count devices: %w", err)
	}
	return n, nil
}

// Labels returns the operator's labels of endpoint, registered or not (an empty map for none).
func (s *Server) Labels(ctx context.Context, endpoint string) (map[string]string, error) {
	l, err := s.store.Labels(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("labels of %s: %w", endpoint, err)
	}
	return l, nil
}

// SetLabels replaces the labels of endpoint, registered or not; labels over the limits fail
// with registration.ErrInvalidLabels.
func (s *Server) SetLabels(ctx context.Context, endpoint string, labels map[string]string) error {
	if err := registration.ValidateLabels(labels); err != nil {
		return fmt.Errorf("labels of %s: %w", endpoint, err)
	}
	if err := s.store.SetLabels(ctx, endpoint, labels); err != nil {
		return fmt.Errorf("labels of %s: %w", endpoint, err)
	}
	return nil
}

// Do runs a device-management request (see dm.Client.Do), within Config.DeviceRequestTimeout
// when it is sent now. A device that does not answer is marked unreachable (Registration's
// UnreachableSince) until it is heard from again.
func (s *Server) Do(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	if s.cluster != nil {
		if res, pending, handled, err := s.cluster.Route(ctx, endpoint, req, false); handled {
			return res, pending, err
		}
	}
	return s.doLocal(ctx, endpoint, req)
}

// doLocal is Do on this node.
func (s *Server) doLocal(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	client, _, err := s.running()
	if err != nil {
		return nil, nil, err
	}
	if s.cfg.DeviceRequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.DeviceRequestTimeout)
		defer cancel()
	}
	res, pending, err := client.Do(ctx, endpoint, req)
	if pending == nil {
		s.heard(endpoint, err)
	}
	return res, pending, err
}

// DoNow runs a request on a device that is awake now, never queuing it (see dm.Client.DoNow).
// A device that does not answer is marked unreachable, as with Do.
func (s *Server) DoNow(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error) {
	if s.cluster != nil {
		if res, _, handled, err := s.cluster.Route(ctx, endpoint, req, true); handled {
			return res, err
		}
	}
	return s.doNowLocal(ctx, endpoint, req)
}

// doNowLocal is DoNow on this node.
func (s *Server) doNowLocal(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error) {
	client, _, err := s.running()
	if err != nil {
		return nil, err
	}
	res, err := client.DoNow(ctx, endpoint, req)
	s.heard(endpoint, err)
	return res, err
}

// heard keeps the outcome of a request sent to endpoint's device: an answer (any answer, an
// error code too) clears its unreachable mark, a timeout sets it.
func (s *Server) heard(endpoint string, err error) {
	var de *dm.DeviceError
	switch {
	case err == nil, errors.As(err, &de):
		s.registry.MarkReachable(endpoint)
	case errors.Is(err, dm.ErrTimeout):
		s.registry.MarkUnreachable(endpoint)
	}
}

// Push writes body to a resource of an awake device in Block1 blocks (see dm.Client.Push).
func (s *Server) Push(ctx context.Context, endpoint string, path lwm2m.Path, format lwm2m.ContentFormat, body io.ReaderAt, size int64, opts transport.UploadOptions) error {
	client, _, err := s.running()
	if err != nil {
		return err
	}
	return client.Push(ctx, endpoint, path, format, body, size, opts)
}

// Hold keeps endpoint's registration from lapsing until release (see registration.Registry.Hold).
func (s *Server) Hold(endpoint string) (release func()) { return s.registry.Hold(endpoint) }

// Local reports whether the device talks to this process (registration.Registry.Local); in a
// cluster, whether this node owns it: its owner row names this node, so a device whose node died
// is Local to the node it talks to next.
func (s *Server) Local(endpoint string) bool {
	if s.cluster != nil {
		return s.cluster.Owns(endpoint)
	}
	return s.registry.Local(endpoint)
}

// SubscribeN streams server events through a buffer of n until ctx ends.
func (s *Server) SubscribeN(ctx context.Context, n int) <-chan events.Event {
	return s.bus.SubscribeN(ctx, n)
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
