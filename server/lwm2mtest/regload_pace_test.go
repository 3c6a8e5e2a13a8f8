package lwm2mtest

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// TestRegLoadUpdateSpread checks RegLoad.Spread: the Updates of a round start spread over it
// (device i of n at i/n of it), not all at once, and the Registers are not spread.
func TestRegLoadUpdateSpread(t *testing.T) {
	var (
		mu      sync.Mutex
		updates []time.Time // arrival of each Update
	)
	srv := fakeRD(t, func(m *message.Message, _ netip.AddrPort) []message.Message {
		if path, _ := m.Options.Path(); path != "/rd" {
			mu.Lock()
			updates = append(updates, time.Now())
			mu.Unlock()
		}
		return []message.Message{rdAck(m, endpointOf(m))}
	})
	const n, spread = 5, 400 * time.Millisecond
	l, err := NewRegLoad(srv.LocalAddr().String(), n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Spread = spread
	ctx := context.Background()
	if got, err := l.Register(ctx, n, 300); err != nil || got != n {
		t.Fatalf("Register = %d, %v", got, err)
	}
	begin := time.Now()
	if got, err := l.Update(ctx, n, 1); err != nil || got != n {
		t.Fatalf("Update = %d, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(updates) != n {
		t.Fatalf("%d Updates arrived, want %d", len(updates), n)
	}
	// Lower bounds only: a busy machine makes a start late, never early.
	for i, at := range updates {
		if due := spread * time.Duration(i) / n; at.Sub(begin) < due {
			t.Errorf("Update %d arrived %s after the round began, before its due %s", i, at.Sub(begin), due)
		}
	}
}
