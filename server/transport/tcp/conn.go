package tcp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// writeTimeout bounds one frame's write, so a peer that stopped reading cannot hold a writer.
const writeTimeout = 30 * time.Second

// maxBlock1Pending bounds the request bodies one connection reassembles at once.
const maxBlock1Pending = 4

// conn is one accepted connection: a peer that lwota serves and sends requests to.
type conn struct {
	e    *Endpoint
	nc   net.Conn
	r    *bufio.Reader
	peer transport.Peer
	reqs chan *request

	wmu sync.Mutex // one frame written at a time

	mu       sync.Mutex
	waiting  map[string]chan *transport.Message // token -> a Do waiting for its response
	peerCSM  csm
	lastRecv time.Time
	pingAt   time.Time // when the outstanding Ping was sent; zero when none is
	pingTok  string

	block1 map[string]*partial // request bodies being reassembled; handler goroutine only

	closed    chan struct{}
	closeOnce sync.Once
}

// request is a request waiting for the Handler.
type request struct {
	msg    *transport.Message
	reject transport.Code
}

// partial is a request body arriving in Block1 blocks.
type partial struct {
	body []byte
	szx  uint8
}

func newConn(e *Endpoint, nc net.Conn, peer transport.Peer) *conn {
	return &conn{
		e: e, nc: nc, r: bufferedReader(nc), peer: peer,
		reqs:     make(chan *request, e.cfg.QueueSize),
		waiting:  make(map[string]chan *transport.Message),
		peerCSM:  csm{maxMessageSize: BaseMaxMessageSize},
		lastRecv: time.Now(),
		block1:   make(map[string]*partial),
		closed:   make(chan struct{}),
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
	})
}

// run exchanges CSMs, then reads frames until the connection ends; requests go to one
// handler goroutine, in order.
func (c *conn) run(ctx context.Context) {
	e := c.e
	if err := c.write(csmFrame(e.cfg.MaxMessageSize)); err != nil {
		return
	}
	// RFC 8323 §5.3: the peer's first message is its CSM.
	_ = c.nc.SetReadDeadline(time.Now().Add(e.cfg.HandshakeTimeout))
	f, err := readFrame(c.r, e.cfg.MaxMessageSize)
	if err != nil {
		e.m.refused.WithLabelValues("no-csm").Inc()
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrFrame) {
			c.abort(err.Error())
		}
		return
	}
	if f.code != codeCSM {
		e.m.refused.WithLabelValues("no-csm").Inc()
		c.abort("the first message must be a CSM")
		return
	}
	if !c.onCSM(f) {
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	e.m.accepted.Inc()

	var wg sync.WaitGroup
	wg.Go(func() { c.serveRequests(ctx) })
	defer func() {
		c.close()
		wg.Wait()
	}()
	for {
		f, err := readFrame(c.r, e.cfg.MaxMessageSize)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrFrame) {
				e.m.malformed.Inc()
				c.abort(err.Error())
			}
			return
		}
		e.m.received.Inc()
		c.mu.Lock()
		c.lastRecv = time.Now()
		c.mu.Unlock()
		if !c.onFrame(f) {
			return
		}
	}
}

// onCSM takes the peer's settings; a bad CSM aborts the connection.
func (c *conn) onCSM(f frame) bool {
	s, err := parseCSM(f.opts)
	if err != nil {
		c.e.m.malformed.Inc()
		c.abort(err.Error())
		return false
	}
	c.mu.Lock()
	c.peerCSM = s
	c.mu.Unlock()
	return true
}

// onFrame handles one frame after the CSM exchange; false ends the connection.
func (c *conn) onFrame(f frame) bool {
	switch {
	case f.code == codeCSM:
		return c.onCSM(f)
	case f.code == codePing:
		// RFC 8323 §5.4: Pong with the Ping's token.
		return c.write(frame{code: codePong, token: f.token}) == nil
	case f.code == codePong:
		c.mu.Lock()
		if string(f.token) == c.pingTok {
			c.pingAt, c.pingTok = time.Time{}, ""
		}
		c.mu.Unlock()
		return true
	case f.code == codeRelease || f.code == codeAbort:
		return false
	case f.signal():
		return true // unknown signals are ignored (§5.1: they carry no critical meaning here)
	case f.code == 0:
		return true // an Empty message is ignored (RFC 8323 §3.4)
	}
	msg, reject := transport.MessageFromOptions(f.code, f.token, f.opts, f.payload)
	if f.code.IsRequest() {
		select {
		case c.reqs <- &request{msg: msg, reject: reject}:
		default:
			c.e.m.queueFull.Inc()
			busy := transport.NewMessage(transport.ServiceUnavailable)
			busy.MaxAge = 1
			c.respond(msg, busy)
		}
		return true
	}
	c.deliver(msg, reject != 0)
	return true
}

// deliver hands a response to the Do waiting for its token, else to a listener (a
// notification). A response carrying an unrecognised critical option is dropped (§5.4.1).
func (c *conn) deliver(msg *transport.Message, bad bool) {
	if bad {
		return
	}
	c.mu.Lock()
	ch, ok := c.waiting[string(msg.Token)]
	if ok {
		delete(c.waiting, string(msg.Token))
	}
	c.mu.Unlock()
	if ok {
		ch <- msg // buffered: never blocks
		return
	}
	if fn := c.e.listener(msg.Token); fn != nil {
		fn(c.peer, msg)
	}
}

// serveRequests runs the Handler for each request, in arrival order.
func (c *conn) serveRequests(ctx context.Context) {
	for {
		select {
		case <-c.closed:
			return
		case r := <-c.reqs:
			if r.reject != 0 {
				c.respond(r.msg, transport.NewMessage(r.reject))
				continue
			}
			if resp := c.handle(ctx, r.msg); resp != nil {
				c.respond(r.msg, resp)
			}
		}
	}
}

// handle reassembles Block1 bodies and runs the Handler; Block2 answers are sliced to the
// block the request asked for, or to what the peer can take.
func (c *conn) handle(ctx context.Context, req *transport.Message) *transport.Message {
	var last transport.Block
	if req.Block1.Set {
		answer, body := c.addBlock1(req)
		if answer != nil {
			return answer
		}
		last = transport.Block{Set: true, Num: req.Block1.Num, SZX: req.Block1.SZX}
		req.Payload, req.Block1, req.Size1 = body, transport.Block{}, -1
	}
	c.e.m.requests.Inc()
	resp := c.e.h.ServeCoAP(ctx, c.peer, req)
	if resp == nil {
		if !last.Set {
			return nil
		}
		resp = transport.NewMessage(transport.Changed)
	}
	if !resp.Block2.Set && resp.Code.IsSuccess() {
		szx := transport.SZXFor(c.e.cfg.BlockSize)
		if req.Block2.Set || len(resp.Payload)+256 > int(c.peerMax()) {
			resp = transport.SliceBlock2(req, resp, min(szx, transport.SZXFor(int(c.peerMax())-256)))
		}
	}
	if last.Set && !resp.Block1.Set {
		r := *resp
		r.Block1 = last
		resp = &r
	}
	return resp
}

// addBlock1 takes one block of a request body (RFC 7959 §2.3); it returns the answer to send
// now (2.31, or an error), or the whole body after the last block.
func (c *conn) addBlock1(req *transport.Message) (*transport.Message, []byte) {
	key := req.Code.String() + " " + req.Path + "?" + strings.Join(req.Query, "&")
	b := req.Block1
	p := c.block1[key]
	if b.Num == 0 {
		if p == nil && len(c.block1) >= maxBlock1Pending {
			return transport.NewMessage(transport.ServiceUnavailable), nil
		}
		p = &partial{szx: b.SZX}
		c.block1[key] = p
	}
	if p == nil || int64(b.Num)*int64(b.Size()) != int64(len(p.body)) {
		delete(c.block1, key)
		return transport.NewMessage(transport.RequestEntityIncomplete), nil
	}
	if len(p.body)+len(req.Payload) > c.e.cfg.MaxBodySize || (req.Size1 > 0 && req.Size1 > int64(c.e.cfg.MaxBodySize)) {
		delete(c.block1, key)
		r := transport.NewMessage(transport.RequestEntityTooLarge)
		r.Size1 = int64(c.e.cfg.MaxBodySize)
		return r, nil
	}
	if b.More && len(req.Payload) != b.Size() {
		delete(c.block1, key)
		return transport.NewMessage(transport.BadRequest), nil
	}
	p.body = append(p.body, req.Payload...)
	if b.More {
		r := transport.NewMessage(transport.Continue)
		r.Block1 = transport.Block{Set: true, Num: b.Num, More: true, SZX: b.SZX}
		return r, nil
	}
	delete(c.block1, key)
	return nil, p.body
}

// respond sends resp as the answer to req (its token).
func (c *conn) respond(req, resp *transport.Message) {
	out := *resp
	out.Token = req.Token
	_ = c.writeMessage(&out)
}

func (c *conn) peerMax() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(c.peerCSM.maxMessageSize, 64)
}

// writeMessage renders m as a frame and writes it.
func (c *conn) writeMessage(m *transport.Message) error {
	return c.write(frame{code: m.Code, token: m.Token, opts: m.Options(), payload: m.Payload})
}

func (c *conn) write(f frame) error {
	b, err := encodeFrame(f)
	if err != nil {
		return fmt.Errorf("tcp: encode %s: %w", f.code, err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.close()
		return fmt.Errorf("tcp: write to %s: %w", c.peer.Addr, err)
	}
	c.e.m.sent.Inc()
	return nil
}

// abort sends an Abort signal with a diagnostic and closes the connection (RFC 8323 §5.6).
func (c *conn) abort(why string) {
	_ = c.write(frame{code: codeAbort, payload: []byte(why)})
	c.close()
}

// checkIdle pings a connection idle for IdleTimeout and closes one whose Ping went unanswered.
func (c *conn) checkIdle(now time.Time) {
	c.mu.Lock()
	idle := now.Sub(c.lastRecv)
	pending := !c.pingAt.IsZero()
	late := pending && now.Sub(c.pingAt) > c.e.cfg.PongTimeout
	tok := ""
	if !pending && idle >= c.e.cfg.IdleTimeout {
		tok = string(c.e.NewToken())
		c.pingAt, c.pingTok = now, tok
	}
	c.mu.Unlock()
	switch {
	case late:
		c.e.m.pingTimeouts.Inc()
		c.close()
	case tok != "":
		_ = c.write(frame{code: codePing, token: []byte(tok)})
	}
}

// roundTrip sends req and waits for the response with its token.
func (c *conn) roundTrip(ctx context.Context, req *transport.Message) (*transport.Message, error) {
	m := *req
	if len(m.Token) == 0 {
		m.Token = c.e.NewToken()
	}
	ch := make(chan *transport.Message, 1)
	k := string(m.Token)
	c.mu.Lock()
	c.waiting[k] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, k)
		c.mu.Unlock()
	}()
	if err := c.writeMessage(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.closed:
		// The request went out; whether the device acted on it is unknown, as after a timeout.
		return nil, fmt.Errorf("%s: connection closed before the answer: %w", c.peer.Addr, transport.ErrTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// collectBlock2 fetches the rest of a response the peer sent in Block2 blocks.
func (c *conn) collectBlock2(ctx context.Context, req, first *transport.Message) (*transport.Message, error) {
	if !first.Block2.Set || !first.Block2.More || (req.Block2.Set && req.Block2.Num > 0) {
		return first, nil
	}
	body := append([]byte(nil), first.Payload...)
	cur := first
	for cur.Block2.More {
		size := cur.Block2.Size()
		if len(body)%size != 0 {
			return nil, fmt.Errorf("tcp: block %d of %d bytes is not full", cur.Block2.Num, len(cur.Payload))
		}
		next := *req
		next.Token, next.Observe = nil, -1
		next.Block1, next.Size1 = transport.Block{}, -1
		if req.Code != transport.FETCH {
			next.Payload = nil
		}
		next.Block2 = transport.Block{Set: true, Num: uint32(len(body) / size), SZX: cur.Block2.SZX}
		resp, err := c.roundTrip(ctx, &next)
		if err != nil {
			return nil, err
		}
		if !resp.Code.IsSuccess() {
			return resp, nil
		}
		if !resp.Block2.Set || int64(resp.Block2.Num)*int64(resp.Block2.Size()) != int64(len(body)) {
			return nil, fmt.Errorf("tcp: peer answered block %v for offset %d", resp.Block2, len(body))
		}
		if !bytes.Equal(resp.ETag, first.ETag) {
			return nil, errors.New("tcp: resource changed during a Block2 transfer (ETag)")
		}
		if len(body)+len(resp.Payload) > c.e.cfg.MaxBodySize {
			return nil, fmt.Errorf("tcp: response body over %d bytes", c.e.cfg.MaxBodySize)
		}
		body = append(body, resp.Payload...)
		cur = resp
	}
	out := *first
	out.Payload, out.Block2 = body, transport.Block{}
	return &out, nil
}

// upload sends size bytes of body with req: whole when the frame fits the peer's
// Max-Message-Size, else in Block1 blocks.
func (c *conn) upload(ctx context.Context, req *transport.Message, body io.ReaderAt, size int64, opts transport.UploadOptions) (*transport.Message, error) {
	peerMax := int64(c.peerMax())
	if size+256 <= peerMax {
		buf := make([]byte, size)
		if _, err := body.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && size == int64(len(buf))) {
			return nil, fmt.Errorf("tcp: read body: %w", err)
		}
		m := *req
		m.Payload = buf
		resp, err := c.roundTrip(ctx, &m)
		if err == nil && resp.Code.IsSuccess() && opts.Progress != nil {
			opts.Progress(size)
		}
		return resp, err
	}
	bs := opts.BlockSize
	if bs <= 0 {
		bs = c.e.cfg.BlockSize
	}
	szx := transport.SZXFor(min(max(bs, 16), 1024))
	for szx > 0 && int64(16<<szx)+256 > peerMax {
		szx--
	}
	buf := make([]byte, 1024)
	var off int64
	for {
		bsize := int64(16) << szx
		n := min(size-off, bsize)
		chunk := buf[:n]
		if _, err := body.ReadAt(chunk, off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, fmt.Errorf("tcp: read body at %d: %w", off, err)
		}
		more := off+n < size
		m := *req
		m.Token = nil
		m.Payload = chunk
		m.Block1 = transport.Block{Set: true, Num: uint32(off / bsize), More: more, SZX: szx}
		if off == 0 {
			m.Size1 = size
		}
		resp, err := c.roundTrip(ctx, &m)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.Code == transport.RequestEntityTooLarge && off == 0 && resp.Block1.Set && resp.Block1.SZX < szx:
			szx = resp.Block1.SZX // §2.9.3: start again with the size the peer names
			continue
		case more && resp.Code == transport.Continue:
			if resp.Block1.Set && resp.Block1.SZX < szx {
				szx = resp.Block1.SZX // §2.3: later blocks in the peer's smaller size
			}
			off += n
			if opts.Progress != nil {
				opts.Progress(off)
			}
		case !more && resp.Code.IsSuccess():
			if opts.Progress != nil {
				opts.Progress(size)
			}
			return c.collectBlock2(ctx, req, resp)
		default:
			return resp, nil
		}
	}
}
