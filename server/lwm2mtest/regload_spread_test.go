package lwm2mtest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
)

// TestRegLoadSpread checks NewRegLoadFrom's devices: each sends its Register and its Updates
// from its own fixed source (spread over loopback addresses, SpreadLocals), so the server sees
// one peer per device, and holds no socket between exchanges; KeepGoing goes past a device the
// server does not answer.
func TestRegLoadSpread(t *testing.T) {
	var (
		mu      sync.Mutex
		sources = map[string]map[netip.AddrPort]int{} // endpoint (or location) -> sources
		mute    = map[string]bool{}
	)
	srv := fakeRD(t, func(m *message.Message, from netip.AddrPort) []message.Message {
		path, _ := m.Options.Path()
		who := strings.TrimPrefix(path, "/rd/")
		if path == "/rd" {
			who = endpointOf(m)
		}
		mu.Lock()
		defer mu.Unlock()
		if sources[who] == nil {
			sources[who] = map[netip.AddrPort]int{}
		}
		sources[who][from]++
		if path != "/rd" && mute[who] {
			return nil
		}
		return []message.Message{rdAck(m, who)}
	})
	first := netip.MustParseAddr("127.79.9.1")
	locals := SpreadLocals(first, 2, 1200)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.79.9.1:1200"), netip.MustParseAddrPort("127.79.9.1:1201"),
		netip.MustParseAddrPort("127.79.9.2:1200"), netip.MustParseAddrPort("127.79.9.2:1201"),
		netip.MustParseAddrPort("127.79.9.3:1200"),
	}
	for i, w := range want {
		if got := locals(i); got != w {
			t.Fatalf("locals(%d) = %v, want %v", i, got, w)
		}
	}
	l, err := NewRegLoadFrom(srv.LocalAddr().String(), len(want), nil, locals)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if n, err := l.Register(ctx, 3, 300); err != nil || n != len(want) {
		t.Fatalf("Register = %d, %v", n, err)
	}
	if n, err := l.Update(ctx, 3, 2); err != nil || n != 2*len(want) {
		t.Fatalf("Update = %d, %v", n, err)
	}
	mu.Lock()
	for i, w := range want {
		ep := DefaultNaming(i)
		if got := sources[ep]; len(got) != 1 || got[w] != 3 {
			t.Errorf("device %d (%s) sent from %v, want 3 times from %v only", i, ep, got, w)
		}
	}
	mute[DefaultNaming(1)] = true
	mu.Unlock()
	// Every device's socket was closed after its exchange: its source can be bound again.
	for _, w := range want {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(w))
		if err != nil {
			t.Fatalf("%v is still bound: %v", w, err)
		}
		c.Close()
	}
	if testing.Short() {
		return
	}
	// A device the server does not answer: 30 s of retransmissions, then the others are done.
	l.KeepGoing = true
	n, err := l.Update(ctx, 3, 1)
	if err == nil || n != len(want)-1 {
		t.Fatalf("Update with one silent device = %d, %v; want %d and its error", n, err, len(want)-1)
	}
}
