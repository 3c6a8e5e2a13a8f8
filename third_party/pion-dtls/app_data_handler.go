// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"net"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// lwota patch 10: application data delivered synchronously to a handler. Read receives each
// record from the connection's reader goroutine through a channel, after a copy of its own
// (ApplicationData.Unmarshal): one goroutine hand-off and one copy per record, which a server
// that hands every record on to goroutines of its own anyway pays for nothing.

// SetApplicationDataHandler makes the connection hand the payload of every application data
// record it decrypts from now on to fn, instead of queueing it for Read. fn runs on the
// connection's reader goroutine, one record at a time in the order they are accepted, and
// data is valid only until fn returns (it is the reader's buffer: copy what must outlive the
// call). While fn runs, the connection reads nothing else, so fn should return soon; it may
// call Write. With a connection id, the connection's remote address already follows the
// record when fn runs (RFC 9146 §6). Records queued for Read before the call stay there, and
// Read still returns errors and io.EOF once the connection ends. A nil fn restores Read.
func (c *Conn) SetApplicationDataHandler(fn func(data []byte)) {
	if fn == nil {
		c.appData.Store(nil)

		return
	}
	c.appData.Store(&fn)
}

// deliverApplicationData hands buf, a decrypted record (13-byte header, then the payload) of
// epoch epoch, to the application data handler, if there is one and the record is application
// data of an established connection, and reports whether it did. markValid is the record's
// anti-replay mark, which it sets first, as the Read path does.
func (c *Conn) deliverApplicationData(buf []byte, epoch uint16, originalCID bool, rAddr net.Addr,
	markValid func() bool,
) bool {
	fn := c.appData.Load()
	if fn == nil || epoch == 0 || len(buf) < recordlayer.FixedHeaderSize ||
		protocol.ContentType(buf[0]) != protocol.ContentTypeApplicationData || !c.isHandshakeCompletedSuccessfully() {
		return false
	}
	isLatestSeqNum := markValid()
	// As handleIncomingPacket does after Read's hand-off, but before the handler runs, so that
	// the handler can answer at the address the record came from.
	if originalCID && isLatestSeqNum && rAddr != c.RemoteAddr() {
		c.lock.Lock()
		c.rAddr = rAddr
		c.lock.Unlock()
	}
	if c.directFn != nil { // HandleApplicationDataFunc's, for this record only (patch 39)
		c.directFn(buf[recordlayer.FixedHeaderSize:])

		return true
	}
	(*fn)(buf[recordlayer.FixedHeaderSize:])

	return true
}
