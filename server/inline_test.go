package server

import (
	"context"
	"testing"

	"github.com/lwota/lwota/server/send"
	"github.com/lwota/lwota/server/transport"
)

// TestCoreHandlerInline: an endpoint answers a request on its reading goroutine only
// when the route's own handler vouches for it; /rd, Send, unmarked routes and unknown paths go
// to the workers (a handler there may call Do to the same device).
func TestCoreHandlerInline(t *testing.T) {
	plain := transport.HandlerFunc(func(context.Context, transport.Peer, *transport.Message) *transport.Message { return nil })
	s := &Server{routes: []route{
		{prefix: "/fw/", h: transport.Inline(plain)},
		{prefix: "/other/", h: plain},
		{prefix: "/rd2/", h: transport.Inline(plain)},
	}}
	h := coreHandler{s}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/fw/token", true},
		{"/other/x", false},
		{"/rd", false},
		{"/rd/abc", false},
		{"/rd2/x", true},
		{send.Path, false},
		{"/nowhere", false},
	} {
		if got := h.Inline(&transport.Message{Path: tc.path}); got != tc.want {
			t.Errorf("Inline(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
