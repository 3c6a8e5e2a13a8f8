package server

import (
	"context"
	"strings"

	"github.com/lwota/lwota/server/send"
	"github.com/lwota/lwota/server/transport"
)

// coreHandler is the Handler of the CoAP and DTLS endpoints: serveCoAP, plus the promise an
// endpoint needs to answer a request on the goroutine that read it (a UDP socket's reader, a
// DTLS session's; transport.InlineHandler, issue 16). Only a route whose own handler vouches for the request is inline; /rd and the Send
// operation never are (registration may store and talk back to the device).
type coreHandler struct{ s *Server }

func (h coreHandler) ServeCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	return h.s.serveCoAP(ctx, from, req)
}

// Inline follows serveCoAP's routing: the part before the route (Seen, and Woke, which flushes
// in a goroutine of its own) never waits on the device.
func (h coreHandler) Inline(req *transport.Message) bool {
	if req.Path == "/rd" || strings.HasPrefix(req.Path, "/rd/") || req.Path == send.Path {
		return false
	}
	for _, r := range h.s.routes {
		if strings.HasPrefix(req.Path, r.prefix) {
			ih, ok := r.h.(transport.InlineHandler)
			return ok && ih.Inline(req)
		}
	}
	return false
}
