// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import "context"

// lwota patch 20: Conn.Write without locks or channels of its own once the handshake is done.
// Each Write checked the write deadline (a select on its channel, fetched under the
// Deadline's lock), ran HandshakeContext (its mutex, to find the handshake done) and fetched
// the write context (the Deadline's lock again, then writeCtxMu): five lock operations and a
// channel per record, each on memory of that connection only, which a server with a thousand
// sessions finds cold. While no write deadline has ever been set on the connection, none of
// them can change once the handshake has succeeded: the deadline never fires, the handshake
// stays done, and the write context is replaced only when the deadline's context changes,
// which only a deadline set can do. So Write keeps that context after its first write and
// uses it directly; SetWriteDeadline (and SetDeadline) turn that off for good, and Write is
// then what it was.

// writeFastContext returns the kept write context, or nil when Write must take its general path.
func (c *Conn) writeFastContext() context.Context {
	if c.writeDeadlineSet.Load() {
		return nil
	}
	if p := c.writeFastCtx.Load(); p != nil {
		return *p
	}

	return nil
}

// keepWriteFastContext keeps ctx, the write context a Write found after a successful handshake,
// for the next writes, unless a write deadline has been set.
func (c *Conn) keepWriteFastContext(ctx context.Context) {
	if c.writeDeadlineSet.Load() || !c.isHandshakeCompletedSuccessfully() || c.writeFastCtx.Load() != nil {
		return
	}
	c.writeFastCtx.Store(&ctx)
	if c.writeDeadlineSet.Load() { // set meanwhile: Write takes its general path
		c.writeFastCtx.Store(nil)
	}
}
