package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Client side: lwota's own confirmable requests (Do), notifications (Notify) and the
// routing of observe notifications (Listen).
//
// An exchange in flight is indexed by (peer, message id), to match its ACK or RST, and, when
// it expects a response, by token, to match a separate response. One time.Timer per exchange
// drives retransmissions with exponential backoff, then the MAX_TRANSMIT_WAIT deadline.

type midKey struct {
	peer netip.AddrPort
	mid  uint16
}

type exchange struct {
	e      *Endpoint
	to     netip.AddrPort
	mid    uint16
	token  string // "" for a Notify: completes on ACK
	data   []byte // the datagram, for retransmission
	timer  *time.Timer
	start  time.Time
	t0     time.Duration // the initial (randomised) timeout
	wait   time.Duration // the current timeout
	tries  int           // retransmissions so far
	acked  bool          // an empty ACK came: waiting for a separate response
	stale  int           // answers from the peer's duplicate cache, each sent again (reissue)
	finish bool
	done   chan exResult // buffered 1
}

type exResult struct {
	msg *Message
	err error
}

type listener struct {
	fn func(Peer, *Message)
}

// exchanges is the client side's shared state, guarded by one mutex.
type exchanges struct {
	mu        sync.Mutex
	closed    bool
	byMID     map[midKey]*exchange
	byToken   map[string]*exchange
	listeners map[string]*listener
}

func (x *exchanges) init() {
	x.byMID = make(map[midKey]*exchange)
	x.byToken = make(map[string]*exchange)
	x.listeners = make(map[string]*listener)
}

func noop(Peer, *Message) {}

// complete ends ex with r. Called with x.mu held.
func (x *exchanges) complete(ex *exchange, r exResult) {
	if ex.finish {
		return
	}
	ex.finish = true
	if ex.timer != nil {
		ex.timer.Stop()
	}
	k := midKey{ex.to, ex.mid}
	if x.byMID[k] == ex {
		delete(x.byMID, k)
	}
	if ex.token != "" && x.byToken[ex.token] == ex {
		delete(x.byToken, ex.token)
	}
	ex.done <- r
}

func (x *exchanges) closeAll() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	for _, ex := range x.byMID {
		x.complete(ex, exResult{err: ErrClosed})
	}
}

// onAckOrReset matches an ACK or RST to the exchange that sent message id f.mid to from.
// Unmatched ones are ignored: answering a response with a response would loop forever.
func (x *exchanges) onAckOrReset(e *Endpoint, from netip.AddrPort, f frame) {
	x.mu.Lock()
	resend := x.matchAckOrReset(e, from, f)
	x.mu.Unlock()
	if resend != nil {
		e.m.staleAnswers.Inc()
		e.write(resend, from)
	}
}

// maxStaleAnswers is how many times one request is sent again under a fresh message id after
// the peer answered it from its duplicate cache; past it, its answers are ignored as before.
const maxStaleAnswers = 3

// matchAckOrReset does onAckOrReset's work with x.mu held. It returns the datagram to send
// again when the exchange was answered from the peer's duplicate cache.
func (x *exchanges) matchAckOrReset(e *Endpoint, from netip.AddrPort, f frame) []byte {
	ex := x.byMID[midKey{from, f.mid}]
	if ex == nil || ex.finish {
		return nil
	}
	switch {
	case f.typ == typeRST:
		x.complete(ex, exResult{err: ErrReset})
	case ex.token == "": // Notify: any ACK completes it
		x.complete(ex, exResult{})
	case f.msg == nil: // empty ACK: the response will come separately
		if !ex.acked {
			ex.acked = true
			deadline := ex.start.Add(time.Duration(int64(1)<<(e.cfg.MaxRetransmit+1)-1) * ex.t0)
			ex.timer.Reset(max(time.Until(deadline), time.Millisecond))
		}
	case string(f.msg.Token) == ex.token && f.reject != 0:
		// RFC 7252 §5.4.1: a piggybacked response with an unrecognised critical option is
		// rejected. Ignoring it would only retransmit the request into the same answer from
		// the peer's duplicate cache until MAX_TRANSMIT_WAIT; the exchange ends now instead.
		x.complete(ex, exResult{err: ErrBadOption})
	case string(f.msg.Token) == ex.token:
		x.complete(ex, exResult{msg: f.msg})
	case !ex.acked && ex.stale < maxStaleAnswers:
		// A piggybacked response under our message id with another token (RFC 7252 §5.3.2: it
		// is not our answer) is the peer's duplicate cache speaking: it took the id for one it
		// answered within EXCHANGE_LIFETIME, for someone else — another cluster node reaching
		// it through the same balancer address, or lwota before a restart — and did not run
		// our request. Every retransmission would get the same cached answer until
		// MAX_TRANSMIT_WAIT; a fresh message id, out of that window, gets the request run now.
		// (After an empty ACK the peer did take our request: it is not sent again.) A cached
		// empty ACK cannot be told from a real one; that case still waits for MAX_TRANSMIT_WAIT.
		return x.reissue(e, ex)
	}
	return nil
}

// reissue sends ex again under a new message id, with its retransmission schedule started
// over. Called with x.mu held; returns the datagram to write.
func (x *exchanges) reissue(e *Endpoint, ex *exchange) []byte {
	old := midKey{ex.to, ex.mid}
	e.mids.reseed(ex.to)
	mid, ok := x.freeMID(e, ex.to)
	if !ok {
		return nil // every id in flight: let the retransmissions run out
	}
	delete(x.byMID, old)
	ex.stale++
	ex.mid = mid
	// A new datagram, never patched in place: a retransmission may be writing the old one.
	ex.data = append([]byte(nil), ex.data...)
	ex.data[2], ex.data[3] = byte(mid>>8), byte(mid)
	x.byMID[midKey{ex.to, mid}] = ex
	ex.start, ex.tries, ex.wait = time.Now(), 0, ex.t0
	ex.timer.Reset(ex.t0)
	return ex.data
}

// freeMID takes the next message id to `to` that no exchange in flight uses. Called with x.mu
// held.
func (x *exchanges) freeMID(e *Endpoint, to netip.AddrPort) (uint16, bool) {
	for range 1 << 16 {
		mid := e.mids.next(to, e.now())
		if x.byMID[midKey{to, mid}] == nil {
			return mid, true
		}
	}
	return 0, false
}

// deliver hands a separate response or notification to the Do waiting for its token or to
// its listener. It returns the listener's function (noop for a Do), or nil when nobody wants it.
// A rejected message (bad, an unrecognised critical option) ends a Do with ErrBadOption and
// reaches no listener.
func (x *exchanges) deliver(from netip.AddrPort, msg *Message, bad bool) func(Peer, *Message) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ex := x.byToken[string(msg.Token)]; ex != nil && ex.to == from && !ex.finish {
		if bad {
			x.complete(ex, exResult{err: ErrBadOption})
			return nil
		}
		x.complete(ex, exResult{msg: msg})
		return noop
	}
	if bad {
		return nil
	}
	if l := x.listeners[string(msg.Token)]; l != nil {
		return l.fn
	}
	return nil
}

// onTimer retransmits ex or ends it with ErrTimeout.
func (ex *exchange) onTimer() {
	e := ex.e
	x := &e.ex
	x.mu.Lock()
	if ex.finish {
		x.mu.Unlock()
		return
	}
	if ex.acked || ex.tries >= e.cfg.MaxRetransmit {
		// The peer may be answering from its duplicate cache: after lwota restarts, its new
		// message ids can run into ids the peer still remembers from the last run (RFC 7252
		// EXCHANGE_LIFETIME), and every retransmission gets the old, unmatched answer. Later
		// requests to this peer start from a fresh id, out of that window. The reseed comes
		// before the Do is woken (mids' lock is a leaf), so the caller's next request cannot
		// take the old sequence's next id first.
		e.mids.reseed(ex.to)
		x.complete(ex, exResult{err: ErrTimeout})
		x.mu.Unlock()
		return
	}
	ex.tries++
	ex.wait *= 2
	ex.timer.Reset(ex.wait)
	data := ex.data // a reissue replaces it under x.mu
	x.mu.Unlock()
	e.m.retransmissions.Inc()
	e.write(data, ex.to)
}

// Do sends req as a confirmable request to `to` and returns the response. It retransmits with
// exponential backoff (RFC 7252 §4.2), takes piggybacked and separate responses (acknowledging
// a confirmable one), reassembles a Block2 response and splits a payload larger than BlockSize
// into Block1 blocks (RFC 7959). It fails with ErrTimeout when retransmissions run out or no
// separate response came within MAX_TRANSMIT_WAIT, ErrReset on a Reset, ctx.Err() when ctx
// ends and ErrClosed when the Endpoint closes. An empty req.Token gets a fresh one; req is not
// modified.
func (e *Endpoint) Do(ctx context.Context, to Addr, req *Message) (*Message, error) {
	if err := e.reachable(to.AddrPort); err != nil {
		return nil, err
	}
	if len(req.Payload) > e.cfg.BlockSize && !req.Block1.Set {
		return e.doBlock1(ctx, to.AddrPort, req)
	}
	resp, err := e.roundTrip(ctx, to.AddrPort, req, true)
	if err != nil {
		return nil, err
	}
	return e.collectBlock2(ctx, to.AddrPort, req, resp)
}

// doBlock1 uploads req's payload in blocks.
func (e *Endpoint) doBlock1(ctx context.Context, to netip.AddrPort, req *Message) (*Message, error) {
	body := req.Payload
	return e.upload(ctx, to, req, bytes.NewReader(body), int64(len(body)), e.prefSZX, nil)
}

// UploadOptions tune Upload.
type UploadOptions struct {
	// BlockSize is the largest block sent (16..1024, rounded down to a power of two); 0 is the
	// endpoint's BlockSize. A peer asking for smaller blocks (RFC 7959 §2.3) gets them.
	BlockSize int
	// Progress, if set, is called after each block the peer accepted with the bytes accepted so far.
	Progress func(sent int64)
}

// Upload sends req with the size bytes of body as its payload, in Block1 blocks read from body
// one at a time, so a large body is never held in memory. A 4.13 answer naming a smaller block
// size restarts the upload at that size (RFC 7959 §2.9.3). Each block is one confirmable
// exchange with its own retransmissions, so the whole upload is bounded by ctx, not by one
// request timeout. The final response is returned (its Block2 body collected).
func (e *Endpoint) Upload(ctx context.Context, to Addr, req *Message, body io.ReaderAt, size int64, opts UploadOptions) (*Message, error) {
	if err := e.reachable(to.AddrPort); err != nil {
		return nil, err
	}
	szx := e.prefSZX
	if opts.BlockSize > 0 {
		szx = min(szx, SZXFor(opts.BlockSize))
	}
	return e.upload(ctx, to.AddrPort, req, body, size, szx, opts.Progress)
}

func (e *Endpoint) upload(ctx context.Context, to netip.AddrPort, req *Message, body io.ReaderAt, total int64, szx uint8, progress func(int64)) (*Message, error) {
	buf := make([]byte, 16<<szx)
	for off := int64(0); ; {
		size := int64(16) << szx
		end := min(off+size, total)
		more := end < total
		n, err := body.ReadAt(buf[:end-off], off)
		if int64(n) < end-off {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("transport: upload: read body at %d: %w", off, err)
		}
		br := *req
		br.Token = nil
		br.Payload = buf[:end-off]
		br.Block1 = Block{Set: true, Num: uint32(off / size), More: more, SZX: szx}
		if off == 0 {
			br.Size1 = total
		}
		if more {
			br.Block2 = Block{}
		}
		resp, err := e.roundTrip(ctx, to, &br, true)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.Code == RequestEntityTooLarge:
			if resp.Block1.Set && resp.Block1.SZX < szx {
				szx, off = resp.Block1.SZX, 0 // the peer wants smaller blocks: start over
				continue
			}
			return nil, fmt.Errorf("%w: peer answered %v", ErrBodyTooLarge, resp.Code)
		case more && resp.Code == Continue:
			if resp.Block1.Set && resp.Block1.SZX < szx {
				szx = resp.Block1.SZX // end is a multiple of the smaller size too
			}
			off = end
			if progress != nil {
				progress(off)
			}
		case more:
			return resp, nil // an early final answer (an error, usually)
		default:
			if progress != nil && resp.Code.IsSuccess() {
				progress(end)
			}
			rest := *req
			rest.Payload = nil
			return e.collectBlock2(ctx, to, &rest, resp)
		}
	}
}

// collectBlock2 fetches the remaining blocks of a Block2 response and returns the whole body.
// A request that asked for a specific later block itself gets that block only.
func (e *Endpoint) collectBlock2(ctx context.Context, to netip.AddrPort, req, first *Message) (*Message, error) {
	if !first.Block2.Set || !first.Block2.More || (req.Block2.Set && req.Block2.Num > 0) {
		return first, nil
	}
	body := append([]byte(nil), first.Payload...)
	cur := first
	for cur.Block2.More {
		size := cur.Block2.Size()
		if len(body)%size != 0 {
			return nil, fmt.Errorf("transport: block %d of %d bytes is not full", cur.Block2.Num, len(cur.Payload))
		}
		next := *req
		next.Token = nil
		next.Observe = -1 // RFC 7959 §2.6: later blocks are plain GETs
		next.Block1 = Block{}
		next.Size1 = -1
		if req.Code != FETCH {
			next.Payload = nil
		}
		next.Block2 = Block{Set: true, Num: uint32(len(body) / size), SZX: cur.Block2.SZX}
		resp, err := e.roundTrip(ctx, to, &next, true)
		if err != nil {
			return nil, err
		}
		if !resp.Code.IsSuccess() {
			return resp, nil
		}
		if !resp.Block2.Set || int64(resp.Block2.Num)*int64(resp.Block2.Size()) != int64(len(body)) {
			return nil, fmt.Errorf("transport: peer answered block %v for offset %d", resp.Block2, len(body))
		}
		if !bytes.Equal(resp.ETag, first.ETag) {
			return nil, errors.New("transport: resource changed during a Block2 transfer (ETag)")
		}
		if len(body)+len(resp.Payload) > e.cfg.MaxBodySize {
			return nil, ErrBodyTooLarge
		}
		body = append(body, resp.Payload...)
		cur = resp
	}
	out := *first
	out.Payload = body
	out.Block2 = Block{}
	return &out, nil
}

// roundTrip runs one confirmable exchange. With wantResponse it waits for a response
// (piggybacked or separate, matched by token); without, for the ACK alone.
func (e *Endpoint) roundTrip(ctx context.Context, to netip.AddrPort, m *Message, wantResponse bool) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := *m
	if wantResponse && len(out.Token) == 0 {
		out.Token = e.NewToken()
	}
	data, err := encode(nil, typeCON, 0, &out) // the message id is patched in below
	if err != nil {
		return nil, fmt.Errorf("transport: encode request: %w", err)
	}
	t0 := e.cfg.ACKTimeout
	if e.cfg.ACKRandomFactor > 1 {
		t0 += time.Duration(mrand.Int64N(int64(float64(e.cfg.ACKTimeout)*(e.cfg.ACKRandomFactor-1)) + 1))
	}
	ex := &exchange{e: e, to: to, data: data, start: time.Now(), t0: t0, wait: t0, done: make(chan exResult, 1)}
	if wantResponse {
		ex.token = string(out.Token)
	}
	x := &e.ex
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, ErrClosed
	}
	if ex.token != "" {
		if old := x.byToken[ex.token]; old != nil && !old.finish {
			x.mu.Unlock()
			return nil, fmt.Errorf("transport: token %x already in use", out.Token)
		}
	}
	// A message id still in flight towards this peer is skipped.
	var ok bool
	if ex.mid, ok = x.freeMID(e, to); !ok {
		x.mu.Unlock()
		return nil, errors.New("transport: 65536 exchanges in flight to one peer")
	}
	data[2], data[3] = byte(ex.mid>>8), byte(ex.mid)
	if ex.token != "" {
		x.byToken[ex.token] = ex
	}
	x.byMID[midKey{to, ex.mid}] = ex
	ex.timer = time.AfterFunc(t0, ex.onTimer)
	x.mu.Unlock()

	e.write(data, to)
	select {
	case r := <-ex.done:
		return r.msg, r.err
	case <-ctx.Done():
		x.mu.Lock()
		x.complete(ex, exResult{err: ctx.Err()})
		x.mu.Unlock()
		r := <-ex.done
		return r.msg, r.err
	}
}

// Notify sends msg, a response such as an observe notification, as a separate message:
// confirmable (waiting for the ACK; ErrReset if the peer resets it, ErrTimeout when
// retransmissions run out) or non-confirmable (sent once, no wait). msg.Token must be the
// token of the request it answers.
func (e *Endpoint) Notify(ctx context.Context, to Addr, msg *Message, confirmable bool) error {
	if err := e.reachable(to.AddrPort); err != nil {
		return err
	}
	if confirmable {
		_, err := e.roundTrip(ctx, to.AddrPort, msg, false)
		return err
	}
	if e.isClosed() {
		return ErrClosed
	}
	b, err := encode(nil, typeNON, e.mids.next(to.AddrPort, e.now()), msg)
	if err != nil {
		return fmt.Errorf("transport: encode notification: %w", err)
	}
	e.write(b, to.AddrPort)
	return nil
}

// Listen routes responses carrying token that match no Do in flight — observe notifications —
// to fn, which runs on a worker goroutine and must not block for long. A confirmable
// notification is acknowledged before fn runs. Responses with a token nobody listens to are
// answered with RST, so the device cancels the observation. stop removes the listener.
func (e *Endpoint) Listen(token []byte, fn func(from Peer, msg *Message)) (stop func()) {
	l := &listener{fn: fn}
	k := string(token)
	x := &e.ex
	x.mu.Lock()
	x.listeners[k] = l
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		if x.listeners[k] == l {
			delete(x.listeners, k)
		}
		x.mu.Unlock()
	}
}

// NewToken returns 8 random bytes for a request token.
func (e *Endpoint) NewToken() []byte { return e.tokens.next() }

// tokenSource hands out tokens from a buffer refilled with crypto/rand.
type tokenSource struct {
	mu  sync.Mutex
	buf [512]byte
	off int
}

func (t *tokenSource) next() []byte {
	tok := make([]byte, 8)
	t.mu.Lock()
	if t.off == 0 || t.off+8 > len(t.buf) {
		_, _ = rand.Read(t.buf[:]) // never fails (Go 1.24+)
		t.off = 0
	}
	copy(tok, t.buf[t.off:])
	t.off += 8
	t.mu.Unlock()
	return tok
}

// midTable allocates message ids per peer (RFC 7252 §4.4: an id must not be reused towards a
// peer within EXCHANGE_LIFETIME). A peer's counter starts at random and is forgotten once the
// peer has been sent nothing for EXCHANGE_LIFETIME, so idle devices cost nothing.
//
// In a cluster (node != 0) every node reaches a device through the balancer, from the same
// address as far as the device knows, so the device's duplicate cache (keyed by source and
// message id) holds all nodes' ids together. A node's sequences to a peer therefore start in a
// range of its own: node n's is the (n-1)%midRanges-th slice of midRangeSize ids, and a start
// lies in its first midStartSpan ids, leaving the rest before the next node's range. A node that
// takes over a device from another cannot start among the other's recent ids. A sequence is
// never wrapped inside its range: one that sends more than that to a peer within
// EXCHANGE_LIFETIME runs on into the next range, keeping its own ids unique (the RFC's rule)
// at the cost of the separation, and nodes whose ids are equal modulo midRanges share a range.
//
// Random starts in so small a span would make a node meet its own recent ids at a device that
// shows up at a new address (a balancer's new session after a reload, a NAT rebinding: the
// device keeps its cache) or after the node restarts, 16 times as often as over all 65,536
// ids. So a node's starts follow the wall clock instead: a cursor that crosses the span once
// per two EXCHANGE_LIFETIMEs (one id per 161 ms by default), plus a little jitter. A sequence
// started later starts further on, past the ids of an earlier one to the same device unless
// that one was sent more than ~6 ids a second.
type midTable struct {
	mu    sync.Mutex
	node  uint16
	tick  int64            // nanoseconds per id of the start cursor
	clock func() time.Time // wall clock: the cursor must move on across a restart
	m     map[netip.AddrPort]midState
}

type midState struct {
	next uint16
	last int64
}

const (
	midRanges      = 16
	midRangeSize   = 1 << 16 / midRanges // 4096
	midStartSpan   = midRangeSize * 3 / 4
	midStartJitter = 8
	midReseedMin   = midRangeSize / 4 // a node's reseed moves 1,024..2,047 ids on
)

// newMidTable returns the table of a node (0: none) whose peers remember ids for lifetime.
func newMidTable(node uint16, lifetime time.Duration) *midTable {
	return &midTable{node: node, tick: max(int64(2*lifetime)/midStartSpan, 1), clock: time.Now,
		m: make(map[netip.AddrPort]midState)}
}

// base is the first id of the node's range.
func (t *midTable) base() uint16 { return uint16((int(t.node)-1)%midRanges) * midRangeSize }

// start is the first id of a new sequence.
func (t *midTable) start() uint16 {
	if t.node == 0 {
		return uint16(mrand.Uint32())
	}
	cursor := t.clock().UnixNano() / t.tick
	return t.base() + uint16((cursor+int64(mrand.IntN(midStartJitter)))%midStartSpan)
}

func (t *midTable) next(to netip.AddrPort, now int64) uint16 {
	t.mu.Lock()
	s, ok := t.m[to]
	if !ok {
		s.next = t.start()
	}
	mid := s.next
	s.next++
	s.last = now
	t.m[to] = s
	t.mu.Unlock()
	return mid
}

// reseed moves the next message id to `to` ahead, away from the ids the peer answered from its
// duplicate cache, never back over ids this sequence sent (they stay unique, RFC 7252 §4.4).
// Without a node it goes between 24,576 and 40,959 ids ahead (at random): it and the 8,000 ids
// after it stay clear of the last 16,384 ids of the old sequence, more than a peer's duplicate
// cache holds at the rates lwota sends to one device. A uniformly random id would land among
// them now and then, and the peer would answer it from its cache. A cluster node goes 1,024 to
// 2,047 ids ahead, mostly still in its range: what the peer remembers there is this node's own
// earlier life (before a restart), a short run of ids that the jump clears.
func (t *midTable) reseed(to netip.AddrPort) {
	t.mu.Lock()
	if s, ok := t.m[to]; ok {
		if t.node == 0 {
			s.next += 0x6000 + uint16(mrand.Uint32()%0x4000)
		} else {
			s.next += midReseedMin + uint16(mrand.IntN(midReseedMin))
		}
		t.m[to] = s
	}
	t.mu.Unlock()
}

func (t *midTable) sweep(cutoff int64) {
	t.mu.Lock()
	for k, s := range t.m {
		if s.last < cutoff {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}
