// Package tcp serves CoAP over TCP and over TLS (RFC 8323; LwM2M 1.1 binding T) with the
// same Handler, Message and Peer as package transport, and sends lwota's requests down the
// connection a device registered over.
package tcp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/transport"
)

// ErrNotConnected is returned by Do and Upload for a peer with no open connection: over TCP,
// lwota can reach a device only while the device keeps its connection up. It is
// transport.ErrNotConnected.
var ErrNotConnected = transport.ErrNotConnected

// Config tunes an Endpoint. Zero fields take DefaultConfig's values.
type Config struct {
	// MaxMessageSize is announced in lwota's CSM: the largest frame lwota accepts (RFC 8323
	// §5.3.1). A larger frame closes the connection.
	MaxMessageSize uint32
	// BlockSize is the largest Block1 block of an upload (16..1024); a peer that announced a
	// smaller Max-Message-Size gets smaller blocks.
	BlockSize int
	// MaxBodySize bounds a body reassembled from blocks, both directions.
	MaxBodySize int
	// MaxConns bounds the open connections; more are closed at once.
	MaxConns int
	// HandshakeTimeout bounds the TLS handshake and the wait for the peer's CSM.
	HandshakeTimeout time.Duration
	// IdleTimeout: a connection that received nothing for this long is sent a Ping; one that
	// does not answer within PongTimeout is closed (RFC 8323 §5.4). 0 turns pings off.
	IdleTimeout time.Duration
	PongTimeout time.Duration
	// QueueSize bounds the requests of one connection waiting for the Handler; more are
	// answered 5.03.
	QueueSize int
}

// DefaultConfig takes frames up to 16 KiB, uploads in 1 KiB blocks and pings a connection idle
// for 5 minutes.
func DefaultConfig() Config {
	return Config{
		MaxMessageSize:   16 << 10,
		BlockSize:        1024,
		MaxBodySize:      8 << 20,
		MaxConns:         10000,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      5 * time.Minute,
		PongTimeout:      30 * time.Second,
		QueueSize:        16,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.BlockSize <= 0 {
		c.BlockSize = d.BlockSize
	}
	c.BlockSize = min(max(c.BlockSize, 16), 1024)
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = d.MaxBodySize
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = d.PongTimeout
	}
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	return c
}

// TLSConfig makes an Endpoint speak CoAP over TLS (coaps+tcp) with X.509 certificates. Go's
// TLS has no pre-shared keys, so there is no TLS-PSK.
type TLSConfig struct {
	// Certificate is lwota's certificate chain and key.
	Certificate tls.Certificate
	// ClientCAs, when set, makes a device certificate chaining to them mandatory; the device's
	// Peer.Identity is then transport.X509IdentityPrefix and its certificate's name (Name picks
	// the field). Nil: devices present none and are anonymous, as NoSec devices are.
	ClientCAs *x509.CertPool
	Name      transport.CertName
}

// Endpoint is one CoAP-over-TCP (or TLS) listener and the connections it accepted.
type Endpoint struct {
	cfg     Config
	network transport.Network
	ln      net.Listener
	tls     *TLSConfig
	h       transport.Handler
	log     *slog.Logger
	m       *metrics

	mu        sync.Mutex
	cancel    context.CancelFunc // ends Serve's context; set by Serve
	conns     map[netip.AddrPort]*conn
	listeners map[string]func(transport.Peer, *transport.Message)
	closed    bool

	done chan struct{}
	wg   sync.WaitGroup
}

// New returns an Endpoint serving ln: plain CoAP over TCP when tc is nil (network
// transport.TCP), else over TLS (transport.TLS). h answers requests. A nil logger discards, a
// nil Registerer leaves the metrics unregistered. The Endpoint owns ln from now on.
func New(ln net.Listener, tc *TLSConfig, h transport.Handler, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Endpoint, error) {
	if ln == nil {
		return nil, errors.New("tcp: nil listener")
	}
	if h == nil {
		return nil, errors.New("tcp: nil handler")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	network := transport.TCP
	if tc != nil {
		network = transport.TLS
		if len(tc.Certificate.Certificate) == 0 {
			return nil, errors.New("tcp: tls: no server certificate")
		}
		switch tc.Name {
		case "", transport.CertNameCN, transport.CertNameSAN:
		default:
			return nil, fmt.Errorf("tcp: tls: certificate name %q: want %q or %q", tc.Name, transport.CertNameCN, transport.CertNameSAN)
		}
	}
	e := &Endpoint{
		cfg: cfg.withDefaults(), network: network, ln: ln, tls: tc, h: h, log: logger,
		conns:     make(map[netip.AddrPort]*conn),
		listeners: make(map[string]func(transport.Peer, *transport.Message)),
		done:      make(chan struct{}),
	}
	var err error
	if e.m, err = newMetrics(network, reg, e.connCount); err != nil {
		return nil, fmt.Errorf("tcp: metrics: %w", err)
	}
	return e, nil
}

// Network is transport.TCP or transport.TLS.
func (e *Endpoint) Network() transport.Network { return e.network }

// LocalAddr is the listener's address.
func (e *Endpoint) LocalAddr() net.Addr { return e.ln.Addr() }

func (e *Endpoint) connCount() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return float64(len(e.conns))
}

// Serve accepts connections until ctx ends or Close is called, then closes every connection
// and returns once all their goroutines ended. It returns nil on such a shutdown.
func (e *Endpoint) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.cancel = cancel
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { _ = e.Close() })
	defer stop()
	if e.cfg.IdleTimeout > 0 {
		e.wg.Go(func() { e.keepAlive(ctx) })
	}
	var err error
	for {
		var nc net.Conn
		nc, err = e.ln.Accept()
		if err != nil {
			if e.isClosed() {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			err = fmt.Errorf("tcp: accept: %w", err)
			break
		}
		e.wg.Go(func() { e.serveConn(ctx, nc) })
	}
	_ = e.Close()
	e.wg.Wait()
	return err
}

// Close stops the listener and closes every connection. Serve returns.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	if e.cancel != nil {
		e.cancel() // connections still in their TLS handshake end too
	}
	conns := make([]*conn, 0, len(e.conns))
	for _, c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	err := e.ln.Close()
	for _, c := range conns {
		c.close()
	}
	return err
}

func (e *Endpoint) isClosed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Connected reports whether the peer at to has a connection open now.
func (e *Endpoint) Connected(to transport.Addr) bool {
	_, err := e.conn(to)
	return err == nil
}

func (e *Endpoint) conn(to transport.Addr) (*conn, error) {
	if to.Network != e.network {
		return nil, fmt.Errorf("tcp: %s is not a %s peer: %w", to, e.network, ErrNotConnected)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, transport.ErrClosed
	}
	c, ok := e.conns[to.AddrPort]
	if !ok {
		return nil, fmt.Errorf("%s: %w", to, ErrNotConnected)
	}
	return c, nil
}

// NewToken returns a random 8-byte token.
func (e *Endpoint) NewToken() []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return b
}

// Listen routes responses with token that match no Do in flight (notifications) to fn until
// stop is called.
func (e *Endpoint) Listen(token []byte, fn func(from transport.Peer, msg *transport.Message)) (stop func()) {
	k := string(token)
	e.mu.Lock()
	e.listeners[k] = fn
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.listeners, k)
		e.mu.Unlock()
	}
}

func (e *Endpoint) listener(token []byte) func(transport.Peer, *transport.Message) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.listeners[string(token)]
}

// Do sends req to the peer at to over its connection and returns the response; a response in
// Block2 blocks is collected. Reliability is TCP's: there are no retransmissions, and a
// connection that closes fails the request with ErrNotConnected.
func (e *Endpoint) Do(ctx context.Context, to transport.Addr, req *transport.Message) (*transport.Message, error) {
	c, err := e.conn(to)
	if err != nil {
		return nil, err
	}
	if len(req.Payload)+256 > int(c.peerMax()) && (req.Code == transport.PUT || req.Code == transport.POST || req.Code == transport.IPATCH) {
		// Larger than the device takes in one frame: in Block1 blocks (RFC 8323 §6).
		return c.upload(ctx, req, bytes.NewReader(req.Payload), int64(len(req.Payload)), transport.UploadOptions{})
	}
	resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	return c.collectBlock2(ctx, req, resp)
}

// Upload sends req with the size bytes of body as its payload: in one message when it fits the
// peer's Max-Message-Size, else in Block1 blocks read one at a time (RFC 7959 over RFC 8323
// §6), following a smaller block size the peer asks for in 2.31 or 4.13.
func (e *Endpoint) Upload(ctx context.Context, to transport.Addr, req *transport.Message, body io.ReaderAt, size int64, opts transport.UploadOptions) (*transport.Message, error) {
	c, err := e.conn(to)
	if err != nil {
		return nil, err
	}
	return c.upload(ctx, req, body, size, opts)
}

// serveConn runs one connection: TLS handshake, CSM exchange, then frames until it closes.
func (e *Endpoint) serveConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	ap, ok := addrPort(nc.RemoteAddr())
	if !ok {
		return
	}
	identity := ""
	if e.tls != nil {
		tc := tls.Server(nc, e.serverTLS())
		hctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			e.m.refused.WithLabelValues("handshake").Inc()
			e.log.Debug("tcp: tls handshake failed", "peer", ap, "err", err)
			return
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			x := transport.X509Config{Name: e.tls.Name}
			name, err := x.DeviceName(certs[0])
			if err != nil {
				e.m.refused.WithLabelValues("certificate").Inc()
				return
			}
			identity = transport.X509IdentityPrefix + name
		}
		nc = tc
	}
	c := newConn(e, nc, transport.Peer{Addr: transport.Addr{Network: e.network, AddrPort: ap}, Identity: identity})
	if !e.add(c) {
		e.m.refused.WithLabelValues("limit").Inc()
		return
	}
	defer e.remove(c)
	c.run(ctx)
}

func (e *Endpoint) serverTLS() *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{e.tls.Certificate}, MinVersion: tls.VersionTLS12}
	if e.tls.ClientCAs != nil {
		cfg.ClientCAs = e.tls.ClientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

func (e *Endpoint) add(c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || len(e.conns) >= e.cfg.MaxConns {
		return false
	}
	if old, ok := e.conns[c.peer.Addr.AddrPort]; ok {
		old.close() // the same address and port again: the old connection is gone
	}
	e.conns[c.peer.Addr.AddrPort] = c
	return true
}

func (e *Endpoint) remove(c *conn) {
	e.mu.Lock()
	if e.conns[c.peer.Addr.AddrPort] == c {
		delete(e.conns, c.peer.Addr.AddrPort)
	}
	e.mu.Unlock()
	c.close()
}

// keepAlive pings connections idle for IdleTimeout and closes those that do not answer.
func (e *Endpoint) keepAlive(ctx context.Context) {
	period := max(min(e.cfg.IdleTimeout, e.cfg.PongTimeout)/2, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.done:
			return
		case now := <-t.C:
			e.mu.Lock()
			conns := make([]*conn, 0, len(e.conns))
			for _, c := range e.conns {
				conns = append(conns, c)
			}
			e.mu.Unlock()
			for _, c := range conns {
				c.checkIdle(now)
			}
		}
	}
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		ap, err := netip.ParseAddrPort(a.String())
		return ap, err == nil
	}
	ap := ta.AddrPort()
	if ap.Addr().Is4In6() {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap, true
}

// bufferedReader sizes the read buffer for one frame header peek and typical frames.
func bufferedReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, 4096) }
