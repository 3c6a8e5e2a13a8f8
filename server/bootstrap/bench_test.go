package bootstrap_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// BenchmarkBootstrapDTLS: one whole bootstrap over DTLS PSK per iteration (handshake,
// Bootstrap-Request, Discover, Delete x2, Write x2, Finish, a minted DM key stored with the
// session), devices in parallel, on SQLite. The sessions/s ratio to registrations/s is
// `lwota bench bootstrap`'s.
func BenchmarkBootstrapDTLS(b *testing.B) {
	h := newHarness(b, func(c *bootstrap.ServerConfig) { c.RequestTimeout = 10 * time.Second })
	ctx := context.Background()
	key := []byte("bench-bootstrap-psk")
	const devices = 256
	for i := range devices {
		ep := fmt.Sprintf("bb-%d", i)
		if err := h.bs.Put(ctx, ep, "bs-"+ep, key); err != nil {
			b.Fatal(err)
		}
	}
	cfg := bootstrap.Config{Scope: bootstrap.ScopePrefix, Name: "bb-", ServerURI: "coaps://127.0.0.1:5684", PSK: bootstrap.PSKGenerate}
	if err := cfg.Normalize(); err != nil {
		b.Fatal(err)
	}
	cfg.UpdatedAt = time.Now()
	if err := h.store.SaveBootstrapConfig(ctx, &cfg); err != nil {
		b.Fatal(err)
	}
	uri := "coaps://" + h.dtls
	next := make(chan int, devices)
	for i := range devices {
		next <- i
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := <-next
			ep := fmt.Sprintf("bb-%d", i)
			if _, _, err := lwm2mtest.Bootstrap(ctx, ep, lwm2mtest.BootstrapConfig{URI: uri, PSKIdentity: "bs-" + ep, PSK: key}, nil, nil); err != nil {
				b.Error(err)
			}
			next <- i
		}
	})
}
