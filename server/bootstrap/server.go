package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// ServerConfig configures the Bootstrap Server's listeners and bounds. Zero durations and
// counts take DefaultServerConfig's.
type ServerConfig struct {
	// CoAPAddr is the UDP address of NoSec bootstrap ("" listens on none); requests on it are
	// refused unless AllowNoSec.
	CoAPAddr string
	// CoAPSAddr is the UDP address of bootstrap over DTLS with bootstrap PSKs ("" none).
	CoAPSAddr  string
	AllowNoSec bool
	// RequestTimeout bounds each request to the device, retransmissions included.
	RequestTimeout time.Duration
	// SessionTimeout bounds a whole session, from Bootstrap-Request to the stored result.
	SessionTimeout time.Duration
	// MaxSessions bounds the sessions in progress; a Bootstrap-Request beyond it gets 5.03.
	MaxSessions int
	Transport   transport.Config
	DTLS        transport.DTLSConfig // PSK is the bootstrap credential store given to New
}

// DefaultServerConfig: 10 s per request, 60 s per session, 1000 sessions at once.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		RequestTimeout: 10 * time.Second,
		SessionTimeout: 60 * time.Second,
		MaxSessions:    1000,
		Transport:      transport.DefaultConfig(),
		DTLS:           transport.DefaultDTLSConfig(),
	}
}

// Credentials are the devices' bootstrap PSKs (a credentials.Manager over the bootstrap table).
type Credentials interface {
	transport.PSKStore
	// EndpointFor returns the endpoint the bootstrap identity belongs to.
	EndpointFor(ctx context.Context, identity string) (string, error)
}

// DMCredentials are the PSKs of lwota's DM server (the credentials.Manager the DM listener uses).
type DMCredentials interface {
	// Get returns endpoint's DM credential, or an error matching credentials.ErrNotFound.
	Get(ctx context.Context, endpoint string) (*credentials.Credential, error)
	// Seal seals a new DM credential without storing it.
	Seal(endpoint, identity string, key []byte) (*credentials.Sealed, error)
	// EndpointFor returns the endpoint a DM PSK identity belongs to (credentials.ErrNotFound:
	// none), so that a minted key is never written under an identity another device holds.
	EndpointFor(ctx context.Context, identity string) (string, error)
	// OpenSecret opens a certificate account's sealed private key.
	OpenSecret(ctx context.Context, s *credentials.Sealed) ([]byte, error)
}

// DMKeyLen is the length of the DM PSKs lwota mints (128 bits, as the AES-128 suites use).
const DMKeyLen = 16

// Server is the LwM2M Bootstrap Server. Build it with New, then Run it.
type Server struct {
	cfg   ServerConfig
	store Store
	bs    Credentials
	dm    DMCredentials
	audit audit.Recorder // nil: not audited
	log   *slog.Logger
	reg   prometheus.Registerer
	m     *metrics
	now   func() time.Time

	sem   chan struct{}
	ready chan struct{}
	// auditQ feeds the audit writers: a session does not wait for each step's audit commit
	// (three times fewer bootstraps per second on SQLite when it did). Bounded: a full queue
	// makes sessions wait, never drops an entry. nil outside Run: entries are written at once.
	auditQ chan audit.Entry

	mu      sync.Mutex
	udp     *transport.Endpoint
	dtls    *transport.Endpoint
	runCtx  context.Context
	running map[string]*run // endpoint -> its session in progress
	wg      sync.WaitGroup
}

// New returns a Bootstrap Server. bs may be nil when CoAPSAddr is empty; rec and reg may be nil.
func New(cfg ServerConfig, store Store, bs Credentials, dm DMCredentials, rec audit.Recorder, logger *slog.Logger, reg prometheus.Registerer) *Server {
	def := DefaultServerConfig()
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = def.RequestTimeout
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = def.SessionTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = def.MaxSessions
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg: cfg, store: store, bs: bs, dm: dm, audit: rec, log: logger, reg: reg, m: newMetrics(reg), now: time.Now,
		sem: make(chan struct{}, cfg.MaxSessions), ready: make(chan struct{}), running: map[string]*run{},
		runCtx: context.Background(),
	}
}

// Ready is closed once the listeners are open.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the NoSec listener's address; nil when off or before Ready.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// SecureAddr is the DTLS listener's address; nil when off or before Ready.
func (s *Server) SecureAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dtls == nil {
		return nil
	}
	return s.dtls.LocalAddr()
}

// Run listens and serves until ctx ends; then it closes the listeners and waits for the sessions.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.CoAPAddr == "" && s.cfg.CoAPSAddr == "" {
		return errors.New("bootstrap: no listener address")
	}
	var eps []*transport.Endpoint
	closeAll := func() {
		for _, e := range eps {
			e.Close()
		}
	}
	h := transport.HandlerFunc(s.serveCoAP)
	var udp, secure *transport.Endpoint
	if s.cfg.CoAPAddr != "" {
		conn, err := net.ListenPacket("udp", s.cfg.CoAPAddr)
		if err != nil {
			return fmt.Errorf("bootstrap: listen coap %s: %w", s.cfg.CoAPAddr, err)
		}
		udp, err = transport.New(conn, transport.UDP, h, s.cfg.Transport, s.log.With("component", "transport"), nil)
		if err != nil {
			conn.Close()
			return fmt.Errorf("bootstrap: coap transport: %w", err)
		}
		eps = append(eps, udp)
	}
	if s.cfg.CoAPSAddr != "" {
		if s.bs == nil {
			closeAll()
			return errors.New("bootstrap: coaps: no bootstrap credentials")
		}
		conn, err := net.ListenPacket("udp", s.cfg.CoAPSAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("bootstrap: listen coaps %s: %w", s.cfg.CoAPSAddr, err)
		}
		dcfg := s.cfg.DTLS
		dcfg.PSK = s.bs
		dcfg.X509 = nil // bootstrap authenticates by bootstrap PSK only
		dcfg.OnHandshakeFailure = s.handshakeFailed
		// The transport's metrics are registered once, by the DM listener; this one keeps its own
		// counts out of the registry.
		secure, err = transport.NewDTLS(conn, h, s.cfg.Transport, dcfg, s.log.With("component", "transport", "network", "dtls"), nil)
		if err != nil {
			conn.Close()
			closeAll()
			return fmt.Errorf("bootstrap: coaps transport: %w", err)
		}
		eps = append(eps, secure)
	}
	var auditWG sync.WaitGroup
	if s.audit != nil {
		q := make(chan audit.Entry, auditQueueSize)
		for range auditWriters {
			auditWG.Go(func() {
				for e := range q {
					// Written even while shutting down: the sessions' trail must be complete.
					wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
					if err := s.audit.Record(wctx, e); err != nil {
						s.log.Warn("bootstrap audit", "actor", e.Actor, "action", e.Action, "err", err)
					}
					cancel()
				}
			})
		}
		s.mu.Lock()
		s.auditQ = q
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.udp, s.dtls, s.runCtx = udp, secure, ctx
	s.mu.Unlock()
	errs := make(chan error, len(eps))
	for _, e := range eps {
		go func() { errs <- e.Serve(ctx) }()
	}
	for _, e := range eps {
		s.log.Info("bootstrap listening", "addr", e.LocalAddr().String(), "nosec", s.cfg.AllowNoSec)
	}
	close(s.ready)
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
	}
	s.mu.Lock()
	for _, r := range s.running {
		r.cancel()
	}
	s.mu.Unlock()
	closeAll()
	for range len(eps) - 1 {
		<-errs
	}
	if first == nil {
		<-errs
	}
	s.wg.Wait()
	s.mu.Lock()
	q := s.auditQ
	s.auditQ = nil
	s.mu.Unlock()
	if q != nil {
		close(q)
		auditWG.Wait()
	}
	if first != nil && ctx.Err() == nil && !errors.Is(first, net.ErrClosed) {
		return fmt.Errorf("bootstrap: %w", first)
	}
	return nil
}

// refusal is a Bootstrap-Request lwota does not take, with the reason kept in the session.
type refusal struct {
	code   transport.Code
	reason string
}

// serveCoAP answers Bootstrap-Request (POST /bs?ep=NAME[&pct=FORMAT]) and starts its session
// once the 2.04 is on the wire. Anything else gets 4.04.
func (s *Server) serveCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	if req.Path != "/bs" {
		return transport.NewMessage(transport.NotFound)
	}
	if req.Code != transport.POST {
		return transport.NewMessage(transport.MethodNotAllowed)
	}
	var ep, pct string
	for _, q := range req.Query {
		k, v, _ := strings.Cut(q, "=")
		switch k {
		case "ep":
			ep = v
		case "pct":
			pct = v
		}
	}
	sess := &Session{
		ID: newID(), Endpoint: ep, Network: string(from.Addr.Network), Identity: from.Identity,
		Peer: from.Addr.AddrPort.String(), StartedAt: s.now().UTC(), Outcome: OutcomeRunning,
	}
	sess.step(s.now(), "request", "/bs", "", queryDetail(req.Query))
	cfg, format, ref := s.admit(ctx, from, ep, pct, sess)
	if ref != nil {
		if ep == "" || len(ep) > lwm2m.MaxEndpointLen {
			s.log.Info("bootstrap request refused", "peer", from.Addr.String(), "reason", ref.reason)
			s.m.sessions.WithLabelValues(OutcomeFailure, "request").Inc()
			return diagnostic(ref.code, ref.reason)
		}
		s.refuse(ctx, sess, "request", ref.reason)
		return diagnostic(ref.code, ref.reason)
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.m.sessions.WithLabelValues(OutcomeFailure, "capacity").Inc()
		return diagnostic(transport.ServiceUnavailable, "too many bootstrap sessions in progress")
	}
	// Stored before it is acknowledged: the device's history shows the session from its 2.04 on.
	if err := s.store.SaveBootstrapSession(ctx, sess); err != nil {
		<-s.sem
		s.log.Error("bootstrap session not stored", "endpoint", ep, "err", err)
		return diagnostic(transport.InternalServerError, "bootstrap session not stored")
	}
	s.record(ctx, sess, "bootstrap.request", "/bs", "2.04", audit.OutcomeSuccess, "")
	r := &run{s: s, sess: sess, cfg: cfg, format: format, to: from.Addr, ep: s.endpointFor(from.Addr.Network)}
	resp := transport.NewMessage(transport.Changed)
	resp.Sent = func() { s.start(r) }
	return resp
}

// admit checks a Bootstrap-Request: the endpoint name, the link's security, the identity's
// endpoint, the configuration and its key. It returns the configuration and the content format
// of the writes, or the refusal.
func (s *Server) admit(ctx context.Context, from transport.Peer, ep, pct string, sess *Session) (*Config, lwm2m.ContentFormat, *refusal) {
	if ep == "" || len(ep) > lwm2m.MaxEndpointLen {
		return nil, 0, &refusal{transport.BadRequest, "Bootstrap-Request without a valid ep= endpoint name"}
	}
	format := lwm2m.FormatTLV
	if pct != "" {
		n, err := strconv.ParseUint(pct, 10, 16)
		f := lwm2m.ContentFormat(n)
		if err != nil || !writable(f) {
			return nil, 0, &refusal{transport.UnsupportedContentFormat, fmt.Sprintf("preferred content format pct=%s is not one lwota writes (TLV 11542, SenML JSON 110, SenML CBOR 112)", pct)}
		}
		format = f
	}
	switch from.Addr.Network {
	case transport.DTLS:
		bound, err := s.bs.EndpointFor(ctx, from.Identity)
		if err != nil {
			return nil, 0, &refusal{transport.Forbidden, fmt.Sprintf("bootstrap PSK identity %q has no bootstrap credential", from.Identity)}
		}
		if bound != ep {
			return nil, 0, &refusal{transport.Forbidden, fmt.Sprintf("bootstrap PSK identity %q belongs to %q, not %q", from.Identity, bound, ep)}
		}
	default:
		if !s.cfg.AllowNoSec {
			return nil, 0, &refusal{transport.Forbidden, "NoSec bootstrap (plain CoAP) is disabled on this server; bootstrap over DTLS with a bootstrap PSK"}
		}
	}
	cfg, err := s.store.ResolveBootstrapConfig(ctx, ep)
	if errors.Is(err, ErrNotFound) {
		return nil, 0, &refusal{transport.BadRequest, fmt.Sprintf("no bootstrap configuration for endpoint %q (nor for a label or prefix of it)", ep)}
	}
	if err != nil {
		s.log.Error("bootstrap config lookup", "endpoint", ep, "err", err)
		return nil, 0, &refusal{transport.InternalServerError, "bootstrap configuration could not be read"}
	}
	sess.Config = string(cfg.Scope) + ":" + cfg.Name
	if err := cfg.Normalize(); err != nil {
		return nil, 0, &refusal{transport.InternalServerError, fmt.Sprintf("bootstrap configuration %s is unusable: %v", sess.Config, err)}
	}
	if cfg.PSK == PSKGenerate {
		// Checked before the 2.04, so that the device is not wiped for a key lwota could not
		// store: the minted key's identity must be free or the device's own.
		id := cfg.PSKIdentity
		if id == "" {
			id = ep
		}
		if bound, err := s.dm.EndpointFor(ctx, id); err == nil && bound != ep {
			return nil, 0, &refusal{transport.InternalServerError, fmt.Sprintf("configuration %s: the DM PSK identity %q belongs to %q", sess.Config, id, bound)}
		} else if err != nil && !errors.Is(err, credentials.ErrNotFound) {
			return nil, 0, &refusal{transport.InternalServerError, fmt.Sprintf("configuration %s: checking the DM PSK identity %q: %v", sess.Config, id, err)}
		}
	}
	if cfg.PSK == PSKStored {
		if _, err := s.dm.Get(ctx, ep); err != nil {
			reason := fmt.Sprintf("configuration %s: the Security instance has no key: endpoint %q has no DM PSK credential", sess.Config, ep)
			if !errors.Is(err, credentials.ErrNotFound) {
				reason = fmt.Sprintf("configuration %s: the DM PSK of %q cannot be read: %v", sess.Config, ep, err)
			}
			return nil, 0, &refusal{transport.InternalServerError, reason}
		}
	}
	if cfg.PSK == PSKX509 {
		// As for a stored PSK: a certificate account whose key does not open is refused before
		// the 2.04, so that the device keeps the accounts it has.
		if _, err := s.dm.OpenSecret(ctx, cfg.X509.SealedKey); err != nil {
			return nil, 0, &refusal{transport.InternalServerError, fmt.Sprintf("configuration %s: the certificate account's private key cannot be opened: %v", sess.Config, err)}
		}
	}
	return cfg, format, nil
}

// writable reports a content format lwota encodes object-instance writes in.
func writable(f lwm2m.ContentFormat) bool {
	switch f {
	case lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR:
		return true
	}
	return false
}

func (s *Server) endpointFor(n transport.Network) *transport.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n == transport.DTLS {
		return s.dtls
	}
	return s.udp
}

// start runs r's session in the background, replacing a session of the same endpoint still in
// progress (the device started over: the old one could only time out).
func (s *Server) start(r *run) {
	s.mu.Lock()
	ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.SessionTimeout)
	r.cancel = cancel
	if old, ok := s.running[r.sess.Endpoint]; ok {
		old.cancel()
	}
	s.running[r.sess.Endpoint] = r
	s.wg.Add(1)
	s.mu.Unlock()
	s.m.active.Inc()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		defer s.m.active.Dec()
		defer func() {
			s.mu.Lock()
			if s.running[r.sess.Endpoint] == r { // else a newer session took the slot

				delete(s.running, r.sess.Endpoint)
			}
			s.mu.Unlock()
			cancel()
		}()
		r.run(ctx)
	}()
}

// refuse stores a session that ended before it began (refused request, failed handshake).
func (s *Server) refuse(ctx context.Context, sess *Session, step, reason string) {
	now := s.now().UTC()
	sess.Outcome, sess.Reason, sess.EndedAt = OutcomeFailure, reason, now
	sess.step(now, "refused", "", "", reason)
	s.m.sessions.WithLabelValues(OutcomeFailure, step).Inc()
	s.log.Info("bootstrap refused", "endpoint", sess.Endpoint, "peer", sess.Peer, "reason", reason)
	if err := s.store.SaveBootstrapSession(ctx, sess); err != nil {
		s.log.Error("bootstrap session not stored", "endpoint", sess.Endpoint, "err", err)
	}
	s.record(ctx, sess, "bootstrap.refused", "/bs", "", audit.OutcomeFailure, reason)
}

// handshakeFailed stores a refused session for the endpoint whose bootstrap identity failed its
// handshake (a wrong bootstrap PSK, typically); an unknown identity names no endpoint and is
// only counted and logged by the transport.
func (s *Server) handshakeFailed(from netip.AddrPort, identity, reason string, err error) {
	if identity == "" || s.bs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	ep, lerr := s.bs.EndpointFor(ctx, identity)
	if lerr != nil {
		return
	}
	sess := &Session{ID: newID(), Endpoint: ep, Network: string(transport.DTLS), Identity: identity, Peer: from.String(), StartedAt: s.now().UTC()}
	s.refuse(ctx, sess, "handshake", fmt.Sprintf("DTLS handshake with bootstrap identity %q failed (%s): wrong bootstrap PSK? %v", identity, reason, err))
}

// record writes one audit entry of a session: the device is the actor.
func (s *Server) record(ctx context.Context, sess *Session, action, path, code, outcome, detail string) {
	if s.audit == nil {
		return
	}
	d := map[string]string{"session": sess.ID}
	if path != "" {
		d["path"] = path
	}
	if code != "" {
		d["code"] = code
	}
	if detail != "" {
		d["detail"] = detail
	}
	e := audit.Entry{At: s.now().UTC(), Actor: audit.ActorDevicePrefix + sess.Endpoint, Action: action, Target: "bootstrap:" + sess.ID,
		RemoteAddr: sess.Peer, Outcome: outcome, Detail: d}
	// Under the lock, so that Run cannot close the queue between the check and the send. With
	// no queue (outside Run) or a full one, the entry is written here: a session waits, and
	// nothing is dropped.
	s.mu.Lock()
	queued := false
	if s.auditQ != nil {
		select {
		case s.auditQ <- e:
			queued = true
		default:
		}
	}
	s.mu.Unlock()
	if queued {
		return
	}
	if err := s.audit.Record(context.WithoutCancel(ctx), e); err != nil {
		s.log.Warn("bootstrap audit", "endpoint", sess.Endpoint, "err", err)
	}
}

// The audit writers: enough to fill the store's write batches.
const (
	auditWriters   = 16
	auditQueueSize = 4096
)

func (sess *Session) step(at time.Time, op, path, code, detail string) {
	sess.Steps = append(sess.Steps, Step{At: at.UTC(), Op: op, Path: path, Code: code, Detail: detail})
}

func queryDetail(q []string) string { return strings.Join(q, "&") }

// diagnostic is a response with a text payload saying why.
func diagnostic(c transport.Code, why string) *transport.Message {
	m := transport.NewMessage(c)
	m.ContentFormat = int(lwm2m.FormatText)
	m.Payload = []byte(why)
	return m
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 16 characters (80 random bits).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
