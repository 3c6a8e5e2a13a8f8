// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"net"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// lwota patch 33: a datagram of application data handled on the caller's goroutine. A server
// that reads one socket for many connections (a demultiplexer) hands each connection's
// datagrams to it through its net.PacketConn, where the connection's reader goroutine picks
// them up: a goroutine hand-off per record, and, with many connections, a reader whose stack
// and state have gone cold in the CPU's caches since its last record. With an application data
// handler set (patch 10), the server can hand an established connection's application data
// to HandleApplicationData instead, on a goroutine of its own that stays hot (lwota's record
// goroutines), which authenticates, decrypts and checks it against the replay window as the
// reader would, and runs the handler right there. (Patch 19, reverted when lwota's use of it
// gained nothing, returns as patch 33 with a use that does.)

// doneContext is handed to handleIncomingPacket by HandleApplicationData: should the handler
// be removed meanwhile, the record is dropped rather than the caller blocked until Read.
var doneContext = func() context.Context { //nolint:gochecknoglobals
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	return ctx
}()

// HandleApplicationData processes datagram, received from rAddr for this connection, on the
// calling goroutine, if it is a single application data record (content type 23, no
// connection id) and the connection is established with an application data handler set
// (SetApplicationDataHandler); it reports whether it took the datagram. A record taken is
// handed to the handler before this returns, or dropped as the reader would drop it (a replay,
// a record that does not authenticate). datagram is decrypted in place: it belongs to the
// connection until this returns, and holds no ciphertext after it took it. A datagram it did
// not take is untouched: give it to the connection's net.PacketConn as before. Records of one
// connection are processed one at a time, whether they come through here or the reader, and
// may come through both (on different goroutines) at once.
func (c *Conn) HandleApplicationData(datagram []byte, rAddr net.Addr) bool {
	return c.handleApplicationData(datagram, rAddr, nil, true)
}

// HandleApplicationDataFunc is HandleApplicationData for a caller that serves many connections
// and must never wait for one (lwota patch 39): the record goes to fn instead of the
// connection's handler, and nothing is taken (false, the datagram untouched) while the
// connection is processing another record, on its reader or another caller. The connection
// must still have a handler set; fn replaces it for this record only, and runs under the same
// lock. lwota's DTLS server reads its socket on a few goroutines and handles records in place
// there: the handler must know it runs on such a reader, not on the connection's own reader
// goroutine, because what it may do when the server is busy differs (a socket reader must
// not stay away from the socket); and a reader that found the connection busy (its handler
// waiting on storage for the record before) would wait as long, where giving the datagram to
// the connection's net.PacketConn costs one hand-off.
func (c *Conn) HandleApplicationDataFunc(datagram []byte, rAddr net.Addr, fn func(data []byte)) bool {
	return c.handleApplicationData(datagram, rAddr, fn, false)
}

func (c *Conn) handleApplicationData(datagram []byte, rAddr net.Addr, fn func(data []byte), wait bool) bool {
	if len(datagram) < recordlayer.FixedHeaderSize ||
		protocol.ContentType(datagram[0]) != protocol.ContentTypeApplicationData ||
		int(datagram[11])<<8|int(datagram[12]) != len(datagram)-recordlayer.FixedHeaderSize ||
		c.appData.Load() == nil || !c.isHandshakeCompletedSuccessfully() || c.isConnectionClosed() ||
		len(c.state.getLocalConnectionID()) > 0 {
		return false
	}
	if wait {
		c.inMu.Lock()
	} else if !c.inMu.TryLock() {
		return false
	}
	defer c.inMu.Unlock()
	if fn != nil {
		c.directFn = fn // read by deliverApplicationData, under inMu as here
		defer func() { c.directFn = nil }()
	}
	// An application data record yields no handshake, retransmission or alert here: the
	// handler takes it (the checks above hold), or it is dropped.
	_, _, _, _ = c.handleIncomingPacket(doneContext, datagram, rAddr, false)

	return true
}
