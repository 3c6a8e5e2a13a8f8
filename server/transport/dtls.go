package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// PSKStore finds the pre-shared key of a device by the PSK identity it presents in the DTLS
// handshake. An error (unknown identity, store failure) fails the handshake.
type PSKStore interface {
	PSK(ctx context.Context, identity string) ([]byte, error)
}

// CipherSuite is an IANA TLS cipher suite number.
type CipherSuite uint16

// The PSK cipher suites lwota offers (LwM2M 1.1 §7.1.7 mandates AES_128_CCM_8).
const (
	TLS_PSK_WITH_AES_128_CCM_8      CipherSuite = 0xC0A8 //nolint:revive // IANA name
	TLS_PSK_WITH_AES_128_GCM_SHA256 CipherSuite = 0x00A8 //nolint:revive // IANA name
	TLS_PSK_WITH_AES_128_CCM        CipherSuite = 0xC0A4 //nolint:revive // IANA name
)

// cidSize is the length of the connection ids lwota issues (RFC 9146); fixed so the demultiplexer
// can find them in a record header.
const cidSize = 8

// DTLSConfig secures an Endpoint with DTLS 1.2 and pre-shared keys. A zero field takes its
// default (DefaultDTLSConfig), except PSK, which is required.
type DTLSConfig struct {
	// PSK is the credential store.
	PSK PSKStore
	// CipherSuites offered, in order of preference. Default TLS_PSK_WITH_AES_128_CCM_8,
	// TLS_PSK_WITH_AES_128_GCM_SHA256.
	CipherSuites []CipherSuite
	// MaxSessions bounds the sessions held (established and handshaking); a ClientHello from a
	// new address beyond it is dropped and counted. Default 100000.
	MaxSessions int
	// MaxHandshakes bounds the handshakes in progress, a subset of MaxSessions, so a flood of
	// ClientHellos cannot take every session slot. Default 1024.
	MaxHandshakes int
	// HandshakeRate is how many handshakes per second one source IP address may start, on
	// average (a token bucket per address; Config.SourceExempt and MaxSources apply); a
	// ClientHello beyond it is dropped and counted. Default 10; negative: no limit.
	HandshakeRate float64
	// HandshakeBurst is the size of a source's bucket. Default 2*HandshakeRate.
	HandshakeBurst int
	// HandshakeTimeout bounds one handshake, PSK lookup included. Default 20 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a session no datagram arrived on for that long; the device
	// handshakes again when it next talks, and until then Do and Notify to it fail with
	// ErrNoSession. Default 5 min.
	IdleTimeout time.Duration
	// HibernateAfter puts an established session no datagram arrived on for that long to
	// sleep: its pion connection and goroutines go, its keys and record counters stay (a few
	// hundred bytes), and its next datagram, or a request lwota sends it, wakes it without a
	// handshake (dtls_idle.go). Default 30 s; negative: never. IdleTimeout still ends it.
	HibernateAfter time.Duration
	// ConnectionID issues RFC 9146 connection ids, so a device behind a NAT whose mapping
	// changed keeps its session. Default off.
	ConnectionID bool
	// OnHandshakeFailure, when set, is told of every failed handshake: the peer, the PSK
	// identity it presented ("" when none), the reason label of the failure metric and the
	// error. It runs on the session's goroutine and should return soon (the Bootstrap Server
	// stores a refused session from it, bounded by its request timeout; HandshakeRate bounds how
	// often one source can make it run).
	OnHandshakeFailure func(from netip.AddrPort, identity, reason string, err error)
	// Node makes this Endpoint one node of a cluster: connection ids name it, and records
	// carrying another node's id go to that node (dtls_relay.go). Zero: a single node.
	Node NodeConfig
	// HelloVerify selects who answers a ClientHello without a valid cookie: lwota, statelessly,
	// before any per-peer state exists, or pion inside a session (dtls_cookie.go). Default
	// HelloVerifyAuto: lwota when the linked pion can take over from a verified ClientHello.
	HelloVerify HelloVerify
	// X509, when set, also authenticates devices by certificate (dtls_x509.go); their
	// Peer.Identity is X509IdentityPrefix and the certificate's name. The ECDHE_ECDSA suites
	// join the default CipherSuites.
	X509 *X509Config
}

// DefaultDTLSConfig returns lwota's DTLS defaults (PSK left nil).
func DefaultDTLSConfig() DTLSConfig {
	return DTLSConfig{
		CipherSuites:     []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_GCM_SHA256},
		MaxSessions:      100000,
		MaxHandshakes:    1024,
		HandshakeRate:    10,
		HandshakeTimeout: 20 * time.Second,
		IdleTimeout:      5 * time.Minute,
		HibernateAfter:   30 * time.Second,
	}
}

func (c DTLSConfig) withDefaults() (DTLSConfig, error) {
	d := DefaultDTLSConfig()
	if c.PSK == nil {
		return c, errors.New("transport: dtls: nil PSK store")
	}
	explicitSuites := len(c.CipherSuites) > 0
	if !explicitSuites {
		c.CipherSuites = d.CipherSuites
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = d.MaxHandshakes
	}
	c.MaxHandshakes = min(c.MaxHandshakes, c.MaxSessions)
	c = c.limitDefaults()
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.HibernateAfter == 0 {
		c.HibernateAfter = d.HibernateAfter
	}
	var err error
	if c.Node, err = c.Node.withDefaults(c.ConnectionID); err != nil {
		return c, err
	}
	return c.x509Defaults(explicitSuites)
}

// NewDTLS returns an Endpoint serving CoAP over DTLS 1.2 (PSK, and certificates when X509 is set)
// on pc, a UDP socket. It is the same engine as New (workers, deduplication, Do, Listen, Notify,
// block-wise); every message carries Peer{Addr{Network: DTLS, AddrPort}, Identity: the session's
// PSK identity, or X509IdentityPrefix and the certificate's name}. Do and Notify reach a device
// only over its live session (ErrNoSession otherwise). The Endpoint owns pc from now on.
func NewDTLS(pc net.PacketConn, h Handler, cfg Config, dcfg DTLSConfig, logger *slog.Logger, reg prometheus.Registerer) (*Endpoint, error) {
	if pc == nil {
		return nil, errors.New("transport: nil conn")
	}
	dcfg, err := dcfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return newEndpoint(pc, DTLS, h, cfg, logger, reg, func(cfg Config, logger *slog.Logger) (link, error) {
		return newDTLSLink(pc, cfg, dcfg, logger, reg)
	})
}

// reachable reports ErrNoSession for a peer a session link cannot reach.
func (e *Endpoint) reachable(to netip.AddrPort) error {
	if l, ok := e.link.(*dtlsLink); ok && !l.hasSession(to) {
		return ErrNoSession
	}
	return nil
}

// SessionIdentity returns the security identity (Peer.Identity) of the established DTLS session
// at to; false when there is none, or e is not a DTLS Endpoint. A device that restarted leaves
// its old address, and another device's new session may take it: a sender checks that the
// session is still the device's own before it sends there.
func (e *Endpoint) SessionIdentity(to netip.AddrPort) (string, bool) {
	if l, ok := e.link.(*dtlsLink); ok {
		return l.identityAt(to)
	}
	return "", false
}

// dtlsLink is a link over DTLS sessions sharing one UDP socket. One goroutine reads the socket
// and routes each datagram to its session by source address (or connection id); each session
// runs one goroutine that handshakes and then reads plaintext into in, plus the goroutines
// pion runs per connection. One more goroutine closes idle sessions.
type dtlsLink struct {
	pc   net.PacketConn
	dc   DTLSConfig
	opts []dtls.ServerOption // every session's handshake options (a connection id generator is added per session)
	// resumeOpts wake a sleeping session: its record layer's settings (dtls_idle.go).
	resumeOpts []dtls.Option
	log        *slog.Logger
	m          *dtlsMetrics
	size       int // plaintext buffer per session: MaxMessageSize+1

	in     chan dtlsRecord
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	started     bool
	closed      bool
	byAddr      map[netip.AddrPort]*dtlsSession
	byCID       map[string]*dtlsSession
	guard       *helloGuard // which ClientHellos may start a session (dtls_limits.go)
	relay       *dtlsRelay  // records for other nodes of a cluster (dtls_relay.go); nil on a single node
	handshaking int
	closeOnce   sync.Once
	closeErr    error
	fast        dtlsFastPath // the record fast path's sink and buffers (dtls_fastpath.go)
	offersPSK   bool         // CipherSuites has a PSK suite (else no PSK callback: pion refuses it)

	// Stateless HelloVerifyRequest (dtls_cookie.go).
	cookies atomic.Pointer[cookieJar] // nil: pion answers ClientHellos without a cookie itself
	probed  chan struct{}             // closed once HelloVerifyAuto has decided
	cookieM *cookieMetrics
}

// dtlsRecord is one decrypted datagram on its way to the engine.
type dtlsRecord struct {
	b        []byte
	from     netip.AddrPort
	identity string
}

// dtlsSession is one peer's DTLS connection. Fields other than vc, ctx, cancel and at are
// guarded by the link's mutex; addr is set with setAddr.
type dtlsSession struct {
	addr        netip.AddrPort
	at          atomic.Pointer[netip.AddrPort] // addr, read without the lock (dtls_rx.go)
	cid         string
	established bool
	identity    string
	conn        *dtls.Conn
	lastRx      time.Time
	vc          *sessionConn
	ctx         context.Context
	cancel      context.CancelFunc
	pskFailed   atomic.Bool            // our PSK lookup refused the client (the handshake's failure reason)
	pskIdentity atomic.Pointer[string] // the PSK identity the client presented, for OnHandshakeFailure
	cookieValid bool                   // lwota checked the ClientHello's cookie: pion skips its own round (dtls_cookie.go)
	seqBase     uint64                 // added to pion's epoch-0 record numbers after a stateless cookie
	idle        sessionSleep           // hibernation of an idle established session (dtls_idle.go)
	fromReader  func([]byte)           // the handler of records a socket reader hands pion (dtls_direct.go); nil until handRecords
}

func newDTLSLink(pc net.PacketConn, cfg Config, dc DTLSConfig, logger *slog.Logger, reg prometheus.Registerer) (*dtlsLink, error) {
	l := &dtlsLink{
		pc:     pc,
		dc:     dc,
		log:    logger,
		size:   cfg.MaxMessageSize + 1,
		in:     make(chan dtlsRecord, cfg.Workers),
		byAddr: make(map[netip.AddrPort]*dtlsSession),
		byCID:  make(map[string]*dtlsSession),
		guard:  newHelloGuard(cfg, dc),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	suites := make([]dtls.CipherSuiteID, len(dc.CipherSuites))
	for i, s := range dc.CipherSuites {
		suites[i] = dtls.CipherSuiteID(s)
		if !isCertificateSuite(s) {
			l.offersPSK = true
		}
	}
	lf := dtlsLoggerFactory() // allocation-free, pion asks for a logger per handshake (dtls_logger.go)
	l.opts = []dtls.ServerOption{
		dtls.WithCipherSuites(suites...),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		// HelloVerifyRequest cookie exchange (RFC 6347 §4.2.1): pion's default for servers,
		// stated so it is not turned off by accident.
		dtls.WithInsecureSkipVerifyHello(false),
		dtls.WithLoggerFactory(lf),
		dtls.WithMTU(max(cfg.MaxMessageSize+64, 1200)),
	}
	l.opts = append(l.opts, dc.x509Options()...)
	cm, err := newCookieMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("transport: metrics: %w", err)
	}
	l.cookieM, l.probed = cm, make(chan struct{})
	if dc.HelloVerify == HelloVerifyStateless {
		l.cookies.Store(newCookieJar(time.Now, cm))
	}
	if dc.HelloVerify != HelloVerifyAuto {
		close(l.probed)
	}
	// A resumed session runs no handshake, so the PSK callback is never asked; pion only needs
	// one to accept the PSK suites (dtls_idle.go). Certificate sessions never sleep.
	if l.offersPSK {
		l.resumeOpts = append(l.resumeOpts, dtls.WithPSK(func(identity []byte) ([]byte, error) { return l.lookupPSK(l.ctx, identity) }))
	}
	l.resumeOpts = append(l.resumeOpts, dtls.WithCipherSuites(suites...), dtls.WithLoggerFactory(lf), dtls.WithMTU(max(cfg.MaxMessageSize+64, 1200)))
	l.m, err = newDTLSMetrics(reg, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(len(l.byAddr))
	})
	if err != nil {
		return nil, fmt.Errorf("transport: metrics: %w", err)
	}
	if l.relay, err = newDTLSRelay(l, reg); err != nil {
		return nil, err
	}
	return l, nil
}

// lookupPSK asks the store for identity's key under ctx, the handshake's (its deadline is
// HandshakeTimeout; a context of its own per lookup cost a timer per handshake).
func (l *dtlsLink) lookupPSK(ctx context.Context, identity []byte) ([]byte, error) {
	if _, isCert := CertificateName(string(identity)); isCert {
		// Such an identity would read as a certificate's name above the transport.
		return nil, fmt.Errorf("transport: psk %q: reserved identity prefix", identity)
	}
	key, err := l.dc.PSK.PSK(ctx, string(identity))
	if err != nil {
		return nil, fmt.Errorf("transport: psk %q: %w", identity, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("transport: psk %q: empty key", identity)
	}
	return key, nil
}

// start runs the socket reader and the idle sweeper, once.
func (l *dtlsLink) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		return
	}
	l.started = true
	l.wg.Add(1 + dtlsReaders)
	for range dtlsReaders {
		go l.demux() // dtls_direct.go
	}
	go l.sweep()
	if l.relay != nil {
		l.relay.start()
	}
	if l.dc.HelloVerify == HelloVerifyAuto {
		l.wg.Add(1)
		go l.probeHelloVerify() // dtls_cookie.go
	}
}

func (l *dtlsLink) readFrom(b []byte) (int, netip.AddrPort, string, error) {
	l.start()
	select {
	case r := <-l.in:
		return copy(b, r.b), r.from, r.identity, nil
	case <-l.ctx.Done():
		return 0, netip.AddrPort{}, "", net.ErrClosed
	}
}

func (l *dtlsLink) writeTo(b []byte, to netip.AddrPort) error {
	c, err := l.sessionConnFor(to) // wakes a hibernated session (dtls_idle.go)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// identityAt returns the identity of the established session at to.
func (l *dtlsLink) identityAt(to netip.AddrPort) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.byAddr[to]
	if s == nil || !s.established {
		return "", false
	}
	return s.identity, true
}

func (l *dtlsLink) hasSession(to netip.AddrPort) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.byAddr[to]
	return s != nil && s.established
}

func (l *dtlsLink) localAddr() net.Addr { return l.pc.LocalAddr() }

// close closes the socket and every session and waits for all goroutines of the link.
func (l *dtlsLink) close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.cancel() // ends handshakes, session readers, readFrom and the sweeper
		l.closeErr = l.pc.Close()
		if l.relay != nil {
			l.relay.close()
		}
		l.wg.Wait()
	})
	return l.closeErr
}

// demux reads the socket and hands each datagram to its session, starting a session for a
// ClientHello from a new address.
func (l *dtlsLink) demux() {
	defer l.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := readDatagram(l.pc, buf) // dtls_record.go
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.log.Error("transport: dtls read failed", "err", err)
			l.cancel() // readFrom reports the link closed; Serve closes the Endpoint
			return
		}
		if !from.IsValid() {
			continue
		}
		l.dispatch(buf[:n], from)
	}
}

// dispatch hands p, a datagram from, to its session: an established session's application data
// record is handled right here (dtls_direct.go), anything else is queued for the session.
func (l *dtlsLink) dispatch(p []byte, from netip.AddrPort) {
	if r, ok := l.route(p, from); ok {
		l.runDirect(r, p, from)
	}
}

// route is dispatch's part under the link's lock: it queues p for its session, or returns the
// session whose record p is to be handled by the caller.
func (l *dtlsLink) route(p []byte, from netip.AddrPort) (directRecord, bool) {
	if l.relay != nil && l.relay.forward(p, from) {
		return directRecord{}, false // the connection id names another node of the cluster
	}
	hello := isClientHello(p)
	var verdict string
	var answer []byte // a HelloVerifyRequest, sent once l.mu is released
	var seqBase uint64
	if hello {
		p = append([]byte(nil), p...) // the rewrite below must not touch the caller's buffer
		normalizeHelloVersion(p)      // mbed TLS 2.x's fe 00, which pion drops (dtls_hello.go)
		if jar := l.cookies.Load(); jar != nil {
			verdict, answer, seqBase = jar.check(p, from) // stateless cookie (dtls_cookie.go)
		}
	}
	defer func() {
		if answer != nil && l.ctx.Err() == nil {
			_, _ = l.pc.WriteTo(answer, net.UDPAddrFromAddrPort(from))
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return directRecord{}, false
	}
	s := l.byAddr[from]
	if verdict != "" && verdict != cookieValid {
		if s == nil || s.established || s.cookieValid {
			// No valid cookie: answered (or dropped) before any per-peer state, and no
			// session, live or pending, hears of it.
			return directRecord{}, false
		}
		answer = nil // a handshake pion began before the stateless cookie was on: its own round
	}
	if l.dc.ConnectionID && len(p) >= 13+cidSize && p[0] == 25 { // tls12_cid record (RFC 9146 §4)
		if cs := l.byCID[string(p[11:11+cidSize])]; cs != nil {
			s = cs // pion moves the session's address once the record authenticates
		}
	}
	if s != nil && s.established && hello && s.addr == from {
		// A new handshake from the address of a live session: the device restarted. The old
		// session goes; the new handshake still has to pass the cookie exchange.
		l.detach(s)
		s = nil
	}
	if s == nil {
		if !hello {
			l.m.droppedNoSession.Inc()
			return directRecord{}, false
		}
		if !l.admitHello(from) {
			return directRecord{}, false
		}
		s = l.newSession(from, verdict == cookieValid, seqBase)
	}
	s.lastRx = time.Now()
	if !l.awake(s) { // hibernated: woken now; going to sleep: dropped, the peer retransmits (dtls_idle.go)
		return directRecord{}, false
	}
	if r, ok := l.takeDirect(s, p); ok { // dtls_direct.go
		return r, true
	}
	in := l.fast.inbound(p, from) // a pooled copy (dtls_fastpath.go)
	select {
	case s.vc.rx <- in:
	default: // the session is behind: drop, the peer retransmits
		l.fast.release(in)
	}
	return directRecord{}, false
}

// newSession registers a handshaking session for from and starts its goroutine. Called with
// l.mu held.
func (l *dtlsLink) newSession(from netip.AddrPort, cookieValid bool, seqBase uint64) *dtlsSession {
	s := &dtlsSession{cookieValid: cookieValid, seqBase: seqBase}
	s.setAddr(from)
	s.ctx, s.cancel = context.WithCancel(l.ctx)
	s.vc = newSessionConn(l, s)
	l.byAddr[from] = s
	l.handshaking++
	l.wg.Add(1)
	go l.run(s)
	return s
}

// detach forgets s and stops it. Called with l.mu held.
func (l *dtlsLink) detach(s *dtlsSession) {
	if l.byAddr[s.addr] == s {
		delete(l.byAddr, s.addr)
	}
	if s.cid != "" && l.byCID[s.cid] == s {
		delete(l.byCID, s.cid)
	}
	if !s.established {
		l.handshaking--
	}
	s.established = false
	s.cancel()
}

// run handshakes, then reads plaintext for the engine until the session ends.
func (l *dtlsLink) run(s *dtlsSession) {
	defer l.wg.Done()
	// The session's conn and incarnation as they were when it started: hibernation ends this
	// goroutine without ending the session, and a wake-up gives the session another conn and
	// goroutine (dtls_idle.go).
	vc, gen := s.vc, s.idle.gen
	defer close(vc.exited)
	defer l.endIncarnation(s, gen)
	// The PSK callback is per session, so a failed handshake can name our refusal as its reason.
	// It runs inside HandshakeContext, under hctx (set before), whose deadline bounds the lookup.
	var hctx context.Context
	opts := slices.Clone(l.opts)
	if l.offersPSK {
		// Only with a PSK suite offered: pion refuses a server with a PSK callback and no PSK
		// suite (errNoAvailablePSKCipherSuite), which failed every certificate-only handshake.
		opts = append(opts, dtls.WithPSK(func(identity []byte) ([]byte, error) {
			id := string(identity)
			s.pskIdentity.Store(&id)
			key, err := l.lookupPSK(hctx, identity)
			if err != nil {
				s.pskFailed.Store(true)
			}
			return key, err
		}))
	}
	if s.cookieValid {
		opts = append(opts, dtls.WithInsecureSkipVerifyHello(true))
	}
	if l.dc.ConnectionID {
		opts = append(opts, dtls.WithConnectionIDGenerator(func() []byte {
			cid := l.newCID() // the node's id first in a cluster (dtls_relay.go)
			l.mu.Lock()
			if s.cid != "" && l.byCID[s.cid] == s {
				delete(l.byCID, s.cid)
			}
			s.cid = string(cid)
			l.byCID[s.cid] = s
			l.mu.Unlock()
			return cid
		}))
	}
	conn, err := dtls.ServerWithOptions(vc, net.UDPAddrFromAddrPort(s.addr), opts...)
	if err != nil {
		_ = vc.Close()
		l.handshakeFailed(s, failProtocol, err)
		return
	}
	// Closing the conn is what unblocks pion and our Read, whoever ends the session.
	stop := context.AfterFunc(s.ctx, func() { _ = vc.Close(); _ = conn.Close() })
	defer stop()
	defer func() { _ = vc.Close(); _ = conn.Close() }()
	var cancel context.CancelFunc
	hctx, cancel = context.WithTimeout(s.ctx, l.dc.HandshakeTimeout)
	err = conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		l.handshakeFailed(s, handshakeFailure(s.ctx, err, s.pskFailed.Load(), false), err)
		return
	}
	identity, err := l.handshakeIdentity(s, conn) // dtls_handshake.go
	if err != nil {
		l.handshakeFailed(s, handshakeFailure(s.ctx, err, false, true), err)
		return
	}
	l.mu.Lock()
	if l.byAddr[s.addr] != s { // detached while handshaking
		l.mu.Unlock()
		return
	}
	s.established, s.conn, s.identity = true, conn, identity
	l.handshaking--
	l.mu.Unlock()
	l.m.handshakeOK.Inc()
	l.readSession(s, vc, conn) // dtls_fastpath.go: plaintext straight to the engine's queue
}

// handshakeFailed counts a failed handshake by reason and logs it: at info, since a device that
// cannot connect is an operator's problem, except when the session was merely replaced or the
// server is closing.
func (l *dtlsLink) handshakeFailed(s *dtlsSession, reason string, err error) {
	l.m.handshakeFailed.Inc()
	l.m.failures.WithLabelValues(reason).Inc()
	level := slog.LevelInfo
	if reason == failClosed {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "transport: dtls handshake failed", "peer", s.currentAddr(l), "reason", reason, "err", err)
	if hook := l.dc.OnHandshakeFailure; hook != nil && reason != failClosed {
		var identity string
		if id := s.pskIdentity.Load(); id != nil {
			identity = *id
		}
		hook(s.currentAddr(l), identity, reason, err)
	}
}

// sweep closes sessions idle for IdleTimeout.
func (l *dtlsLink) sweep() {
	defer l.wg.Done()
	period := min(max(l.dc.IdleTimeout/4, 10*time.Millisecond), 10*time.Second)
	if l.dc.HibernateAfter > 0 {
		period = min(period, max(l.dc.HibernateAfter/2, 10*time.Millisecond))
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case now := <-t.C:
			cutoff := now.Add(-l.dc.IdleTimeout)
			var sleepy []*dtlsSession
			l.mu.Lock()
			for _, s := range l.byAddr {
				if s.established && s.lastRx.Before(cutoff) {
					l.detach(s)
					l.m.idleClosed.Inc()
				} else if l.dc.HibernateAfter > 0 && s.established && s.lastRx.Before(now.Add(-l.dc.HibernateAfter)) {
					sleepy = append(sleepy, s)
				}
			}
			l.mu.Unlock()
			for _, s := range sleepy {
				l.hibernate(s)
			}
		}
	}
}

// moved records that pion now writes to s at to (an authenticated connection-id record came
// from there, RFC 9146 §6).
func (l *dtlsLink) moved(s *dtlsSession, to netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.addr == to || l.byAddr[s.addr] != s {
		return
	}
	if other := l.byAddr[to]; other != nil {
		l.detach(other)
	}
	delete(l.byAddr, s.addr)
	s.setAddr(to)
	l.byAddr[to] = s
}

// follow moves s to the address pion now holds for its peer, so a record that arrived with a
// connection id from a new address (NAT rebinding) reaches the Handler with that address, and
// Do finds the session there. pion updates the address just after it hands the record to Read,
// so follow first waits until pion has finished with the datagrams it took.
func (l *dtlsLink) follow(s *dtlsSession, vc *sessionConn, conn *dtls.Conn) {
	vc.settle(s.ctx)
	ua, ok := conn.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return
	}
	if to := unmap(ua.AddrPort()); to != s.currentAddr(l) {
		l.moved(s, to)
	}
}

// isClientHello reports a DTLS handshake record of epoch 0 holding a ClientHello.
func isClientHello(p []byte) bool {
	return len(p) >= 25 && p[0] == 22 && p[1] == 0xfe && p[3] == 0 && p[4] == 0 && p[13] == 1
}

type inbound struct {
	b      []byte
	from   netip.AddrPort
	pooled *[]byte // b's buffer when it comes from dtlsFastPath.inbound, returned after the read
}

// sessionConn is the net.PacketConn pion sees for one session: reads come from the
// demultiplexer (dtls_rx.go), writes go to the shared socket.
type sessionConn struct {
	l *dtlsLink
	s *dtlsSession
	sessionRx

	// muted drops every write from now on: the session is going to sleep, and a record its
	// old pion connection sent after the snapshot of its counters would reuse a nonce once the
	// session wakes (dtls_idle.go).
	muted atomic.Bool
	// exited is closed when the goroutine that runs this conn's session has ended.
	exited chan struct{}
	// direct counts this conn's records a socket reader is handing pion (dtls_direct.go).
	direct atomic.Int32

	addr lastUDPAddr // the *net.UDPAddr ReadFrom returns, kept while the address stays (dtls_fastpath.go)
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "transport: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (c *sessionConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if c.muted.Load() {
		return len(b), nil
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("transport: dtls: bad address %v", addr)
	}
	if ap := unmap(ua.AddrPort()); ap != c.s.currentAddr(c.l) {
		c.l.moved(c.s, ap)
	}
	out := shiftEpoch0Seq(b, c.s.seqBase) // a cookie session's handshake records (dtls_cookie.go)
	if c.l.relay != nil && c.l.relay.writeBack(out, ua.AddrPort()) {
		return len(b), nil // the device reaches the cluster through another node (dtls_relay.go)
	}
	if _, err := c.l.pc.WriteTo(out, addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *sessionConn) LocalAddr() net.Addr { return c.l.pc.LocalAddr() }

// SetWriteDeadline is a no-op: writes to a UDP socket do not block for long.
func (c *sessionConn) SetWriteDeadline(time.Time) error { return nil }

// dtlsMetrics count handshakes and sessions.
type dtlsMetrics struct {
	handshakeOK      prometheus.Counter
	handshakeFailed  prometheus.Counter
	refused          prometheus.Counter
	idleClosed       prometheus.Counter
	droppedNoSession prometheus.Counter
	failures         *prometheus.CounterVec // by reason (dtls_hello.go)
	hibernated       prometheus.Counter     // idle sessions put to sleep (dtls_idle.go)
	woken            prometheus.Counter     // sleeping sessions woken
}

func newDTLSMetrics(reg prometheus.Registerer, sessions func() float64) (*dtlsMetrics, error) {
	labels := prometheus.Labels{"network": string(DTLS)}
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "lwota", Subsystem: "transport", Name: name, Help: help, ConstLabels: labels}
	}
	handshakes := prometheus.NewCounterVec(opts("dtls_handshakes_total", "DTLS handshakes by result: ok, failed."), []string{"result"})
	m := &dtlsMetrics{
		handshakeOK:     handshakes.WithLabelValues("ok"),
		handshakeFailed: handshakes.WithLabelValues("failed"),
		refused: prometheus.NewCounter(opts("dtls_sessions_refused_total",
			"ClientHellos dropped because MaxSessions or MaxHandshakes was reached.")),
		idleClosed: prometheus.NewCounter(opts("dtls_sessions_idle_closed_total", "DTLS sessions closed after IdleTimeout.")),
		droppedNoSession: prometheus.NewCounter(opts("dtls_datagrams_no_session_total",
			"Datagrams dropped: not a ClientHello and no session for their address.")),
		failures: prometheus.NewCounterVec(opts("dtls_handshake_failures_total",
			"Failed DTLS handshakes by reason: timeout, psk, certificate, peer_alert, protocol, closed."), []string{"reason"}),
		hibernated: prometheus.NewCounter(opts("dtls_sessions_hibernated_total",
			"Idle DTLS sessions put to sleep after HibernateAfter: their connection state kept, their goroutines and buffers released.")),
		woken: prometheus.NewCounter(opts("dtls_sessions_woken_total", "Sleeping DTLS sessions resumed by a datagram or a request to the device.")),
	}
	for _, r := range []string{failTimeout, failPSK, failCertificate, failPeerAlert, failProtocol, failClosed} {
		m.failures.WithLabelValues(r) // every reason exported from the start, at zero
	}
	if reg == nil {
		return m, nil
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "lwota", Subsystem: "transport", Name: "dtls_sessions",
		Help: "DTLS sessions held, established and handshaking.", ConstLabels: labels}, sessions)
	for _, c := range []prometheus.Collector{handshakes, m.failures, m.refused, m.idleClosed, m.droppedNoSession, m.hibernated, m.woken, open} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// sessions reports the sessions held, for tests.
func (l *dtlsLink) sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byAddr)
}
