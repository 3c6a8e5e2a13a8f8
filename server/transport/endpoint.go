package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoint is one CoAP endpoint on one socket. It serves devices' requests through a Handler
// and sends lwota's own requests (Do) and notifications (Notify) from the same socket. It keeps
// no per-peer session: what it holds per peer is bounded in time (deduplication, Block1
// reassembly, message-id counters) and expires in bulk.
type Endpoint struct {
	cfg     Config
	network Network
	h       Handler
	log     *slog.Logger
	m       *metrics
	link    link
	base    time.Time // origin of the monotonic clock used by dedup and Block1
	prefSZX uint8

	dedup   *dedup
	block1  *block1Table
	sources *sourceLimiter // nil: SourceRate off; used by the reader goroutine only
	mids    *midTable
	tokens  tokenSource
	ex      exchanges

	bufs  sync.Pool // *[]byte of MaxMessageSize+1
	queue chan packet
	// spilled holds inline-safe requests a socket's reader found no room for in queue
	// (udp_inline.go, dtls_direct.go).
	spilled chan spilledRequest
	// admitMu serialises admit for a link that delivers datagrams from many goroutines
	// (dtls_fastpath.go); the engine's own reader needs no lock.
	admitMu sync.Mutex
	inl     inlineState // requests answered where they were read or decrypted (dtls_inline.go)

	serving   atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// packet is one datagram waiting for a worker.
type packet struct {
	buf      *[]byte
	f        frame // buf decoded already when decoded (dtls_inline.go)
	decoded  bool
	n        int
	from     netip.AddrPort
	identity string
	refuse   uint8  // refuseNone, or the limit the datagram is answered for (limits.go)
	maxAge   uint32 // Max-Age of a refuseRate answer
}

// New returns an Endpoint reading and writing conn (a UDP socket). network names the link in
// Peer addresses and metric labels. h answers requests; it may be nil for an Endpoint that
// only sends requests (then every request is answered 4.04). A nil logger discards logs and a
// nil Registerer disables metrics. The Endpoint owns conn from now on.
func New(conn net.PacketConn, network Network, h Handler, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Endpoint, error) {
	return newEndpoint(conn, network, h, cfg, logger, reg, func(Config, *slog.Logger) (link, error) {
		return newUDPLink(conn), nil
	})
}

// newEndpoint builds the engine over the link mk returns (called once the configuration is
// complete); conn is the socket under that link.
func newEndpoint(conn net.PacketConn, network Network, h Handler, cfg Config, logger *slog.Logger, reg prometheus.Registerer,
	mk func(Config, *slog.Logger) (link, error)) (*Endpoint, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("transport: nil conn")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if rb, ok := conn.(interface{ SetReadBuffer(int) error }); ok && cfg.ReadBuffer > 0 {
		if err := rb.SetReadBuffer(cfg.ReadBuffer); err != nil {
			logger.Warn("transport: cannot set the socket receive buffer", "bytes", cfg.ReadBuffer, "err", err)
		}
	}
	if h == nil {
		h = HandlerFunc(func(context.Context, Peer, *Message) *Message { return NewMessage(NotFound) })
	}
	l, err := mk(cfg, logger)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg:     cfg,
		network: network,
		h:       h,
		log:     logger,
		link:    l,
		base:    time.Now(),
		prefSZX: SZXFor(cfg.BlockSize),
		dedup:   newDedup(int64(cfg.ExchangeLifetime)),
		sources: newSourceLimiter(cfg.SourceRate, cfg.SourceBurst, cfg.MaxSources, cfg.SourceExempt, cfg.TrustedProxies...),
		mids:    newMidTable(cfg.NodeID, cfg.ExchangeLifetime),
		queue:   make(chan packet, cfg.QueueSize),
		closed:  make(chan struct{}),
	}
	e.ex.init()
	size := cfg.MaxMessageSize + 1
	e.bufs.New = func() any { b := make([]byte, size); return &b }
	e.m, err = newMetrics(network, reg,
		func() float64 { return float64(e.dedup.len()) },
		func() float64 { return float64(e.block1.len()) })
	if err != nil {
		return nil, fmt.Errorf("transport: metrics: %w", err)
	}
	e.block1 = newBlock1Table(cfg, e.m.limits, e.m.block1Dropped)
	if lc, ok := l.(limitCounting); ok {
		lc.countLimits(e.m.limits)
	}
	if pl, ok := l.(pushLink); ok {
		pl.setSink(e) // the link queues datagrams itself (dtls_fastpath.go)
	}
	e.spilled = make(chan spilledRequest, cfg.QueueSize) // udp_inline.go, dtls_direct.go
	return e, nil
}

// LocalAddr is the socket's address.
func (e *Endpoint) LocalAddr() net.Addr { return e.link.localAddr() }

// Close closes the socket and fails every exchange in flight with ErrClosed. Serve returns.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.closeErr = e.link.close()
		e.ex.closeAll()
	})
	return e.closeErr
}

func (e *Endpoint) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// now is the Endpoint's monotonic clock in nanoseconds.
func (e *Endpoint) now() int64 { return int64(time.Since(e.base)) }

// Serve reads datagrams and runs the workers until ctx ends or Close is called; it then
// closes the Endpoint and returns once every goroutine it started has ended. It returns nil
// on such a shutdown and the read error if the socket fails otherwise. Serve may run once.
func (e *Endpoint) Serve(ctx context.Context) error {
	if !e.serving.CompareAndSwap(false, true) {
		return errors.New("transport: Serve called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() { _ = e.Close() })
	defer stop()
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() { e.worker(ctx) })
	}
	wg.Go(func() { e.janitor(ctx) })
	// A socket the engine reads itself gets plainReaders readers (udp_inline.go), at most all but
	// one of them answering inline at a time; a link that pushes datagrams (DTLS) only needs one
	// goroutine waiting for it to close.
	readers, limit := plainReaders, plainReaders-1
	if _, push := e.link.(pushLink); push {
		// DTLS: the link's own readers answer inline, at most all but one at a time
		// (dtls_direct.go).
		readers, limit = 1, dtlsReaders-1
	}
	e.inl.limit = int32(min(limit, e.cfg.Workers))
	e.inl.ctx.Store(&ctx) // from now on a reader may answer datagrams itself (dtls_inline.go)
	errs := make([]error, readers)
	var rg sync.WaitGroup
	for i := range readers {
		rg.Go(func() {
			errs[i] = e.readLoop()
			_ = e.Close() // one reader's end (a socket error) ends the others
		})
	}
	rg.Wait()
	var err error
	for _, rerr := range errs {
		if rerr != nil && err == nil {
			err = rerr
		}
	}
	cancel()
	_ = e.Close()
	wg.Wait()
	// Datagrams left in the queue are dropped.
	for {
		select {
		case p := <-e.queue:
			e.bufs.Put(p.buf)
		default:
			return err
		}
	}
}

func (e *Endpoint) readLoop() error {
	for {
		bp := e.bufs.Get().(*[]byte)
		n, from, id, err := e.link.readFrom(*bp)
		if err != nil {
			e.bufs.Put(bp)
			if e.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			e.log.Error("transport: read failed", "err", err)
			return fmt.Errorf("transport: read: %w", err)
		}
		if n == 0 && !from.IsValid() {
			e.bufs.Put(bp)
			continue
		}
		e.admitAndHandle(bp, n, from, id, overflowSpill) // admit, then answer inline or queue (dtls_fastpath.go)
	}
}

func (e *Endpoint) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-e.spilled:
			e.inlineOverflow(r.f, r.from, r.identity)
		case p := <-e.queue:
			if p.refuse != refuseNone {
				e.refuse((*p.buf)[:p.n], p.from, p.refuse, p.maxAge)
			} else if p.decoded {
				e.handleFrame(ctx, p.f, Peer{Addr: Addr{Network: e.network, AddrPort: p.from}, Identity: p.identity})
			} else {
				e.handleDatagram(ctx, (*p.buf)[:p.n], Peer{Addr: Addr{Network: e.network, AddrPort: p.from}, Identity: p.identity})
			}
			e.bufs.Put(p.buf)
		}
	}
}

// janitor expires deduplication generations, idle Block1 reassemblies and message-id
// counters in bulk.
func (e *Endpoint) janitor(ctx context.Context) {
	period := min(max(min(e.cfg.ExchangeLifetime/8, e.cfg.Block1Timeout/4), 10*time.Millisecond), 10*time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := e.now()
			e.dedup.sweep(now)
			cutoff := now - int64(e.cfg.ExchangeLifetime)
			e.block1.sweep(now - int64(e.cfg.Block1Timeout))
			e.mids.sweep(cutoff)
		}
	}
}

func (e *Endpoint) write(b []byte, to netip.AddrPort) {
	if err := e.link.writeTo(b, to); err != nil {
		if !e.isClosed() {
			e.log.Debug("transport: write failed", "peer", to, "err", err)
		}
		return
	}
	e.m.sent.Inc()
}

// handleDatagram decodes one datagram and dispatches it by message type.
func (e *Endpoint) handleDatagram(ctx context.Context, data []byte, from Peer) {
	f, err := decode(data)
	if err != nil {
		e.m.dropMalformed.Inc()
		return
	}
	e.handleFrame(ctx, f, from)
}

// handleFrame dispatches a decoded datagram by message type.
func (e *Endpoint) handleFrame(ctx context.Context, f frame, from Peer) {
	switch {
	case f.typ == typeACK || f.typ == typeRST:
		e.ex.onAckOrReset(e, from.Addr.AddrPort, f)
	case f.msg == nil: // Empty CON is a ping (RFC 7252 §4.3); an Empty NON is ignored
		if f.typ == typeCON {
			e.write(emptyMessage(typeRST, f.mid), from.Addr.AddrPort)
		}
	case f.msg.Code.IsRequest():
		e.serveRequest(ctx, from, f)
	default:
		e.onResponse(from, f)
	}
}

// serveRequest answers a CON or NON request.
func (e *Endpoint) serveRequest(ctx context.Context, from Peer, f frame) {
	req := f.msg
	e.m.request(req.Code)
	ap := from.Addr.AddrPort
	if f.reject != 0 {
		if f.typ == typeNON && f.reject == BadOption {
			// RFC 7252 §5.4.1: a NON with an unrecognised critical option is rejected (§4.3),
			// with a Reset, never answered 4.02.
			e.write(emptyMessage(typeRST, f.mid), ap)
			return
		}
		if b := e.render(ap, f, NewMessage(f.reject)); b != nil {
			e.write(b, ap)
		}
		return
	}
	cache := cachesResponse(req)
	var key dedupKey
	if cache {
		var dup bool
		if key, dup = e.duplicate(ap, f); dup {
			return
		}
	}
	resp := e.process(ctx, from, req)
	answer := e.render(ap, f, resp)
	if cache {
		// Recorded before sending, so that a copy arriving right after the answer finds it.
		keep := answer
		if f.typ != typeCON {
			keep = nil // a duplicate NON is dropped, not answered again
		}
		e.dedup.finish(key, keep, e.now())
	}
	if answer != nil {
		e.write(answer, ap)
	}
	if resp != nil && resp.Sent != nil {
		resp.Sent()
	}
}

// duplicate records message f.mid from ap and reports whether it was seen within the exchange
// lifetime. A confirmable copy of a message already answered gets the recorded answer again; a
// copy of one still being handled is dropped.
func (e *Endpoint) duplicate(ap netip.AddrPort, f frame) (dedupKey, bool) {
	key := makeDedupKey(ap, f.mid)
	state, answer := e.dedup.begin(key, e.now())
	switch state {
	case dedupPending:
		e.m.duplicates.Inc()
		return key, true
	case dedupDone:
		e.m.duplicates.Inc()
		if f.typ == typeCON && len(answer) > 0 {
			e.write(answer, ap)
		}
		return key, true
	}
	return key, false
}

// process runs block-wise reassembly and the handler for one request.
func (e *Endpoint) process(ctx context.Context, from Peer, req *Message) *Message {
	var lastBlock1 Block
	if req.Block1.Set {
		answer, body := e.block1.add(from.Addr.AddrPort, req, e.prefSZX, e.now())
		if answer != nil {
			return answer
		}
		lastBlock1 = Block{Set: true, Num: req.Block1.Num, SZX: req.Block1.SZX}
		req.Payload = body
		req.Block1 = Block{}
		req.Size1 = -1
	}
	start := time.Now()
	resp := e.h.ServeCoAP(ctx, from, req)
	e.m.handlerSeconds.Observe(time.Since(start).Seconds())
	if resp == nil {
		if lastBlock1.Set {
			resp = NewMessage(Changed)
		} else {
			return nil
		}
	}
	resp = sliceBlock2(req, resp, e.prefSZX)
	if lastBlock1.Set && !resp.Block1.Set {
		r := *resp
		r.Block1 = lastBlock1 // RFC 7959 §2.3: the final response names the last block
		resp = &r
	}
	return resp
}

// render encodes resp as the answer to the request in f: piggybacked in the ACK of a CON, a
// NON to a NON. A nil resp renders an empty ACK to a CON and nothing (nil) to a NON.
func (e *Endpoint) render(to netip.AddrPort, f frame, resp *Message) []byte {
	if resp == nil {
		if f.typ != typeCON {
			return nil
		}
		return emptyMessage(typeACK, f.mid)
	}
	typ, mid := typeACK, f.mid
	if f.typ == typeNON {
		typ, mid = typeNON, e.mids.next(to, e.now())
	}
	out := *resp
	out.Token = f.msg.Token
	b, err := encode(nil, typ, mid, &out)
	if err != nil {
		e.log.Error("transport: encode response", "peer", to, "code", resp.Code, "err", err)
		out = *NewMessage(InternalServerError)
		out.Token = f.msg.Token
		if b, err = encode(nil, typ, mid, &out); err != nil {
			return nil
		}
	}
	return b
}

// onResponse takes a CON or NON response: the separate response to a Do in flight, an
// observe notification for a listener, or an unknown one, answered with RST. A response with an
// unrecognised critical option is rejected (RFC 7252 §5.4.1, §4.2, §4.3): a CON one with RST,
// a NON one silently; a Do waiting for it ends with ErrBadOption.
func (e *Endpoint) onResponse(from Peer, f frame) {
	ap := from.Addr.AddrPort
	var key dedupKey
	if f.typ == typeCON {
		var dup bool
		if key, dup = e.duplicate(ap, f); dup {
			return // a copy: answered again with the same ACK or RST
		}
	}
	fn := e.ex.deliver(ap, f.msg, f.reject != 0)
	var reply []byte
	switch {
	case fn == nil && f.typ == typeNON && f.reject != 0:
		// rejected silently
	case fn == nil:
		reply = emptyMessage(typeRST, f.mid)
	case f.typ == typeCON:
		reply = emptyMessage(typeACK, f.mid)
	}
	if f.typ == typeCON {
		e.dedup.finish(key, reply, e.now())
	}
	if reply != nil {
		e.write(reply, ap)
	}
	if fn != nil {
		fn(from, f.msg)
	}
}
