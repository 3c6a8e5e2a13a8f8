// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/pion/transport/v5/netctx"
)

// ctxPacketConn is netctx.NewPacketConn without a goroutine per call: a cancellable context
// interrupts a blocked read or write through context.AfterFunc, which costs nothing until the
// context ends, where netctx starts (and waits for) a goroutine for every ReadFromContext and
// WriteToContext. Conn reads and writes one record at a time through it, so that goroutine was
// two goroutine starts per record exchanged (LWOTA-PATCHES.md, patch 1).
//
// Semantics are netctx's: when ctx ends during the call, the underlying deadline is set in the
// past to unblock it and reset once the call returned; a call interrupted with nothing done
// reports context.Cause(ctx) (ctx.Err() for contexts without a cause).
type ctxPacketConn struct {
	nextConn  net.PacketConn
	closed    chan struct{}
	closeOnce sync.Once
	readMu    sync.Mutex
	writeMu   sync.Mutex
}

// veryOld is a deadline in the past: it makes a blocked call return at once.
var veryOld = time.Unix(0, 1) //nolint:gochecknoglobals

func newCtxPacketConn(pconn net.PacketConn) netctx.PacketConn {
	return &ctxPacketConn{nextConn: pconn, closed: make(chan struct{})}
}

// interruptOn arranges for set(veryOld) when ctx ends; release undoes it once the call returned
// and reports the error of that interruption, if any.
func interruptOn(ctx context.Context, set func(time.Time) error) (release func() error) {
	if ctx.Done() == nil {
		return func() error { return nil } // never cancelled: nothing to arrange
	}
	var (
		fired  = make(chan struct{})
		setErr error
	)
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		setErr = set(veryOld)
	})

	return func() error {
		if stop() {
			return nil // ctx did not end during the call
		}
		<-fired
		if setErr != nil {
			return setErr
		}

		return set(time.Time{})
	}
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
	select {
	case <-p.closed:
		return 0, nil, net.ErrClosed
	default:
	}
	release := interruptOn(ctx, p.nextConn.SetReadDeadline)
	n, raddr, err := p.nextConn.ReadFrom(b)
	errDeadline := release()
	if ctx.Err() != nil && n == 0 {
		err = ctxErr(ctx)
	}
	if err == nil && errDeadline != nil {
		err = errDeadline
	}

	return n, raddr, err
}

func (p *ctxPacketConn) WriteToContext(ctx context.Context, b []byte, raddr net.Addr) (int, error) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	select {
	case <-p.closed:
		return 0, netctx.ErrClosing
	default:
	}
	release := interruptOn(ctx, p.nextConn.SetWriteDeadline)
	n, err := p.nextConn.WriteTo(b, raddr)
	errDeadline := release()
	if ctx.Err() != nil && n == 0 {
		err = ctxErr(ctx)
	}
	if err == nil && errDeadline != nil {
		err = errDeadline
	}

	return n, err
}

func (p *ctxPacketConn) Close() error {
	err := p.nextConn.Close()
	p.closeOnce.Do(func() {
		p.writeMu.Lock()
		p.readMu.Lock()
		close(p.closed)
		p.readMu.Unlock()
		p.writeMu.Unlock()
	})

	return err
}

func (p *ctxPacketConn) LocalAddr() net.Addr { return p.nextConn.LocalAddr() }

func (p *ctxPacketConn) Conn() net.PacketConn { return p.nextConn }
