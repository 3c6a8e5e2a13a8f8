// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"net"
)

// DatagramLender is a net.PacketConn that can lend Conn the datagrams it reads (lwota patch 37).
// Conn's reader goroutine waits for the next datagram for the whole life of the connection,
// and through ReadFrom it waits holding a read buffer of 8 KiB from poolReadBuffer: 8 KiB of
// live heap per idle connection (the largest part of an established connection's memory)
// that the collector marks at every cycle. A PacketConn that already holds each datagram in
// memory of its own (a server demultiplexing one socket into connections queues them) lends
// it instead: Conn holds no buffer while it waits, and copies nothing.
type DatagramLender interface {
	net.PacketConn
	// ReadDatagram waits for the next datagram, as ReadFrom does (deadlines and Close
	// included), and returns it in memory the PacketConn owns. Conn may modify it (it
	// decrypts in place) and is done with it when it calls ReadDatagram again or Close.
	ReadDatagram() ([]byte, net.Addr, error)
}

// readBuffer is the read buffer of one datagram read: a poolReadBuffer buffer, or none when the
// datagram was lent (lwota patch 37).
type readBuffer struct{ pooled *[]byte }

// release gives the buffer back once the datagram is processed.
func (r readBuffer) release() {
	if r.pooled != nil {
		poolReadBuffer.Put(r.pooled)
	}
}

// readDatagram reads the next datagram for readAndBuffer: lent by a DatagramLender, or read into a
// poolReadBuffer buffer taken for the call.
func (c *Conn) readDatagram(ctx context.Context) ([]byte, net.Addr, readBuffer, error) {
	if p, ok := c.nextConn.(*ctxPacketConn); ok && p.lender != nil {
		b, rAddr, err := p.readDatagramContext(ctx)

		return b, rAddr, readBuffer{}, err
	}
	bufptr, ok := poolReadBuffer.Get().(*[]byte)
	if !ok {
		return nil, nil, readBuffer{}, errFailedToAccessPoolReadBuffer
	}
	i, rAddr, err := c.nextConn.ReadFromContext(ctx, *bufptr)
	if err != nil {
		poolReadBuffer.Put(bufptr)

		return nil, nil, readBuffer{}, err
	}

	return (*bufptr)[:i], rAddr, readBuffer{pooled: bufptr}, nil
}

// readDatagramContext is ReadFromContext for a DatagramLender.
func (p *ctxPacketConn) readDatagramContext(ctx context.Context) ([]byte, net.Addr, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.closed.Load() {
		return nil, nil, net.ErrClosed
	}
	if err := p.read.begin(ctx); err != nil {
		return nil, nil, err
	}
	b, raddr, err := p.lender.ReadDatagram()
	if ctx.Err() != nil && err != nil {
		err = ctxErr(ctx)
	}

	return b, raddr, err
}
