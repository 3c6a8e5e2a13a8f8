// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/netctx"
)

// ctxPacketConn is netctx.NewPacketConn without a goroutine per call: a cancellable context
// interrupts a blocked read or write through context.AfterFunc, which costs nothing until the
// context ends, where netctx starts (and waits for) a goroutine for every ReadFromContext and
// WriteToContext. Conn reads and writes one record at a time through it, so that was two
// goroutine starts per record exchanged (LWOTA-PATCHES.md, patch 1). Conn passes the same
// context to call after call (its reader's context; its closer's when no write deadline is set),
// so the AfterFunc is registered once per context, not once per call.
//
// Semantics are netctx's: when ctx ends during a call, the underlying deadline is set in the
// past to unblock it; a call interrupted with nothing done reports context.Cause(ctx). One
// difference: the deadline is put back (to none) before the next call, not right after the
// interrupted one, and a context that ends between calls also moves it; Conn owns the
// underlying connection, so nothing else sees it.
type ctxPacketConn struct {
	nextConn net.PacketConn
	lender   DatagramLender // nextConn when it lends its datagrams (lwota patch 37), or nil
	// closed is set by Close (lwota patch 41). It was a channel, closed by Close and polled
	// with a select by every read and write: a second object per connection, which a server
	// with a thousand sessions found cold at every record. The flag sits beside the mutexes the
	// call takes anyway.
	closed    atomic.Bool
	closeOnce sync.Once
	readMu    sync.Mutex
	writeMu   sync.Mutex
	read      ctxWatch
	write     ctxWatch
}

// veryOld is a deadline in the past: it makes a blocked call return at once.
var veryOld = time.Unix(0, 1) //nolint:gochecknoglobals

func newCtxPacketConn(pconn net.PacketConn) netctx.PacketConn {
	lender, _ := pconn.(DatagramLender)

	return &ctxPacketConn{
		nextConn: pconn,
		lender:   lender,
		read:     ctxWatch{set: pconn.SetReadDeadline},
		write:    ctxWatch{set: pconn.SetWriteDeadline},
	}
}

// ctxWatch interrupts the calls of one direction (read or write) when their context ends.
type ctxWatch struct {
	set func(time.Time) error // the underlying conn's SetReadDeadline or SetWriteDeadline

	mu    sync.Mutex
	ctx   context.Context //nolint:containedctx // the context of the calls, watched across calls
	stop  func() bool
	fired bool // ctx ended and set the deadline in the past
}

// begin prepares a call made with ctx: it watches ctx (once per context) and takes back a
// deadline an earlier context set in the past. It reports an error for a context already done.
func (w *ctxWatch) begin(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ctx != w.ctx {
		if w.stop != nil {
			w.stop()
		}
		w.ctx, w.stop = ctx, nil
		if ctx.Done() != nil {
			w.stop = context.AfterFunc(ctx, func() {
				w.mu.Lock()
				defer w.mu.Unlock()
				if w.ctx == ctx { // not replaced by a newer context meanwhile
					w.fired = true
					_ = w.set(veryOld)
				}
			})
		}
	}
	if w.fired {
		w.fired = false

		return w.set(time.Time{})
	}

	return nil
}

func ctxErr(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}

	return ctx.Err()
}

func (p *ctxPacketConn) ReadFromContext(ctx context.Context, b []byte) (int, net.Addr, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	if err := p.read.begin(ctx); err != nil {
		return 0, nil, err
	}
	n, raddr, err := p.nextConn.ReadFrom(b)
	if ctx.Err() != nil && n == 0 {
		err = ctxErr(ctx)
	}

	return n, raddr, err
}

func (p *ctxPacketConn) WriteToContext(ctx context.Context, b []byte, raddr net.Addr) (int, error) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if p.closed.Load() {
		return 0, netctx.ErrClosing
	}
	if err := p.write.begin(ctx); err != nil {
		return 0, err
	}
	n, err := p.nextConn.WriteTo(b, raddr)
	if ctx.Err() != nil && n == 0 {
		err = ctxErr(ctx)
	}

	return n, err
}

func (p *ctxPacketConn) Close() error {
	err := p.nextConn.Close()
	p.closeOnce.Do(func() {
		p.writeMu.Lock()
		p.readMu.Lock()
		p.closed.Store(true)
		for _, w := range []*ctxWatch{&p.read, &p.write} {
			w.mu.Lock()
			if w.stop != nil {
				w.stop()
			}
			w.ctx, w.stop = nil, nil
			w.mu.Unlock()
		}
		p.readMu.Unlock()
		p.writeMu.Unlock()
	})

	return err
}

// unwatch stops watching the contexts of reads and writes (lwota patch 36). Conn.close calls
// it just before it cancels them when it is about to close this conn, which unblocks a blocked
// call by itself: the watches' AfterFuncs would otherwise each start a goroutine, once per
// connection, only to move the deadline of a conn being closed. A later call with a context
// already done fails at once, as before.
func (p *ctxPacketConn) unwatch() {
	for _, w := range [...]*ctxWatch{&p.read, &p.write} {
		w.mu.Lock()
		if w.stop != nil {
			w.stop()
		}
		w.ctx, w.stop = nil, nil
		w.mu.Unlock()
	}
}

func (p *ctxPacketConn) LocalAddr() net.Addr { return p.nextConn.LocalAddr() }

func (p *ctxPacketConn) Conn() net.PacketConn { return p.nextConn }
