package transport

import (
	"context"
	"net/netip"
	"sync/atomic"
)

// Inline handling (issue 16). A DTLS record reaches a worker after three goroutine hand-offs on
// the server (the demultiplexer, pion's reader, the session's reader, then a worker); plain
// CoAP needs one. The last hand-off is only needed for a request whose handler may wait on the
// device that sent it: a handler that calls Do (or Notify) to that device waits for an answer
// which only the session's reader can deliver, so run on that reader it would deadlock until
// Do times out. Everything else can run where the record was decrypted, and does when it is
// known to be safe:
//
//   - ACK, RST, a piggybacked response to a Do, and an Empty CON (ping): the engine only
//     completes an exchange or answers RST; it waits on nothing.
//   - A request whose Handler implements InlineHandler and says so for that request (lwota's
//     firmware Block2 server, firmware/transfer, does for GET /fw/...). A duplicate of such a
//     request is answered (or dropped) from the duplicate cache on the same path.
//
// Everything else (separate responses and notifications, whose listeners run arbitrary code,
// and any request whose handler makes no promise) goes to the workers' queue as before. Inline
// handlers run at most inlineState.limit at once (beyond that a record is queued), so a slow
// handler (a storage read on a cache miss) cannot make the whole fleet's sessions run handlers
// without bound. A request that finds the limit reached and the workers' queue full too spills
// into a second queue for the workers when a socket reader read it (dtls_direct.go), and runs
// on its session's goroutine beyond the limit (inlineOverflow) when pion's reader of that
// session decrypted it, rather than being dropped.

// InlineHandler is a Handler that can vouch, request by request, that ServeCoAP never waits for
// the device that sent the request: it calls no Do or Notify to that device and waits on
// nothing that device's next datagram would complete. It may still block on other things
// (storage) for a bounded time. A DTLS Endpoint then answers such a request on the goroutine
// that decrypted it rather than a worker's.
type InlineHandler interface {
	Handler
	// Inline reports whether ServeCoAP(req) may run on the sender's session goroutine.
	Inline(req *Message) bool
}

// Inline marks every request h answers as inline-safe (see InlineHandler). Use it only for a
// handler that never sends to the device that asked.
func Inline(h Handler) InlineHandler { return inlineAll{h} }

type inlineAll struct{ Handler }

func (inlineAll) Inline(*Message) bool { return true }

// inlineState is the Endpoint's part of inline handling.
type inlineState struct {
	ctx  atomic.Pointer[context.Context] // Serve's context; nil before Serve: nothing inline
	busy atomic.Int32                    // handlers running inline now, at most limit
	// limit is plainReaders-1 on a UDP socket the engine reads and dtlsReaders-1 on a DTLS
	// link, so that one reader is always reading however long the inline handlers wait on
	// storage (udp_inline.go, dtls_direct.go); never more than Config.Workers.
	limit int32
}

// inline handles the admitted datagram data from (with identity) on the calling goroutine (a
// DTLS session's reader) when that is safe, and reports whether it did. If it did not, it may
// have decoded data already: f is then that decoding, for the worker (ok true); safe says f is
// an inline-safe request that found inlineState.limit handlers running inline already.
func (e *Endpoint) inline(data []byte, from netip.AddrPort, identity string) (handled bool, f frame, ok, safe bool) {
	ctxp := e.inl.ctx.Load()
	if ctxp == nil {
		return false, f, false, false
	}
	f, err := decode(data)
	if err != nil {
		e.m.dropMalformed.Inc()
		return true, f, false, false
	}
	peer := Peer{Addr: Addr{Network: e.network, AddrPort: from}, Identity: identity}
	switch {
	case f.typ == typeACK || f.typ == typeRST || f.msg == nil:
		// Completes an exchange, answers a ping: nothing here waits.
		e.handleFrame(*ctxp, f, peer)
		return true, f, true, false
	case !f.msg.Code.IsRequest():
		return false, f, true, false // a separate response or notification: its listener may wait
	}
	ih, isInline := e.h.(InlineHandler)
	if !isInline || !ih.Inline(f.msg) {
		return false, f, true, false
	}
	if e.inl.busy.Add(1) > e.inl.limit {
		e.inl.busy.Add(-1)
		return false, f, true, true
	}
	defer e.inl.busy.Add(-1)
	e.handleFrame(*ctxp, f, peer)
	return true, f, true, false
}

// inlineOverflow handles f, an inline-safe request from (with identity) that found the inline
// handlers at their limit and the workers' queue full, on the calling session goroutine after
// all, rather than dropping it. Dropped, it cost its device a retransmission timeout: at 1,000
// devices pulling over DTLS about one block in twenty was (issue 16), each stalling a device
// for a second, and the record had been decrypted for nothing. Running it here holds up only
// the session whose request it is (the handler promises not to wait on that device), and each
// session runs one record at a time, so the excess is bounded by the sessions that are sending.
// (Waiting for an inline slot instead is worse: a freed slot goes to a waiter that must first
// be scheduled, behind every runnable session, while the slot stays taken.) A worker runs it
// too, for a request a plain UDP socket's reader spilled (udp_inline.go).
func (e *Endpoint) inlineOverflow(f frame, from netip.AddrPort, identity string) {
	e.m.inlineOverflow.Inc()
	e.handleFrame(*e.inl.ctx.Load(), f, Peer{Addr: Addr{Network: e.network, AddrPort: from}, Identity: identity})
}
