package lwm2mtest

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// TestSourceAddress: a RegLoad made by NewRegLoadAt and a Device with LocalAddr send from the
// loopback address they were given, not from 127.0.0.1 (lwota bench runs each round's fleet
// from a loopback address of its own, so a server never sees an earlier device's source again).
func TestSourceAddress(t *testing.T) {
	var (
		mu    sync.Mutex
		froms = map[string]map[netip.Addr]int{} // endpoint prefix: source addresses seen
	)
	srv := fakeRD(t, func(m *message.Message, from netip.AddrPort) []message.Message {
		if ep := endpointOf(m); ep != "" {
			mu.Lock()
			if froms[ep[:2]] == nil {
				froms[ep[:2]] = map[netip.Addr]int{}
			}
			froms[ep[:2]][from.Addr()]++
			mu.Unlock()
		}
		return []message.Message{rdAck(m, "id-"+endpointOf(m))}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name, prefix string
		local        netip.Addr
		run          func(local netip.Addr, prefix string) error
	}{
		{"regload", "r-", netip.MustParseAddr("127.0.0.3"), func(local netip.Addr, prefix string) error {
			l, err := NewRegLoadAt(srv.LocalAddr().String(), local, 4, func(i int) string { return prefix + DefaultNaming(i) })
			if err != nil {
				return err
			}
			defer l.Close()
			_, err = l.Register(ctx, 2, 300)
			return err
		}},
		{"device", "d-", netip.MustParseAddr("127.0.0.4"), func(local netip.Addr, prefix string) error {
			f := NewFleet(4, DeviceConfig{LocalAddr: local}, func(i int) string { return prefix + DefaultNaming(i) }, nil)
			defer f.Close()
			_, err := f.Start(ctx, srv.LocalAddr().String(), 2)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(tc.local, tc.prefix); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			got := froms[tc.prefix]
			if len(got) != 1 || got[tc.local] != 4 {
				t.Fatalf("Registers came from %v, want 4 from %v", got, tc.local)
			}
		})
	}
}
