package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server/webhooks"
)

// BenchmarkSaveRegistrationOutbox is what the webhook outbox costs a registration storm on
// SQLite: 64 workers registering distinct devices, with no outbox statement (a registration
// without id, the baseline), with the statement and no subscription (every server that uses no
// webhooks), and with one subscription to registrations (a delivery row per save).
func BenchmarkSaveRegistrationOutbox(b *testing.B) {
	for _, tc := range []struct {
		name      string
		noID      bool
		subscribe bool
	}{{"baseline", true, false}, {"outbox-no-subscription", false, false}, {"outbox-subscribed", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "lwota.db"))
			ctx := context.Background()
			if tc.subscribe {
				sub, err := webhooks.NewSubscription("http://127.0.0.1:9/x", []string{"registration"}, "", true, "bench", time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if err := s.CreateSubscription(ctx, sub); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := benchRegistration(fmt.Sprintf("urn:imei:%015d", n.Add(1)))
					if tc.noID {
						r.ID = ""
					}
					if err := s.SaveRegistration(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}

// BenchmarkUpdateRegistrationOutbox is the fleet's steady state: Updates of registered devices,
// whose Register was queued already. With the outbox they cost what they cost without it.
func BenchmarkUpdateRegistrationOutbox(b *testing.B) {
	for _, tc := range []struct {
		name string
		noID bool
	}{{"baseline", true}, {"outbox", false}} {
		b.Run(tc.name, func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "lwota.db"))
			ctx := context.Background()
			sub, err := webhooks.NewSubscription("http://127.0.0.1:9/x", []string{"registration"}, "", true, "bench", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.CreateSubscription(ctx, sub); err != nil {
				b.Fatal(err)
			}
			const devices = 1000
			for i := range devices {
				r := benchRegistration(fmt.Sprintf("urn:imei:%015d", i))
				if tc.noID {
					r.ID = ""
				}
				if err := s.SaveRegistration(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := benchRegistration(fmt.Sprintf("urn:imei:%015d", n.Add(1)%devices))
					if tc.noID {
						r.ID = ""
					}
					if err := s.SaveRegistration(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}
