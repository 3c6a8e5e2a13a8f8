package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// BenchmarkStatusRead compares what the update driver's verification costs on loopback: one
// Read-Composite of /3/0/3, /5/0/3 and /5/0/5 against the Read of /5/0 and the Read of /3/0/3 it
// replaces. Report the ratio of the two sub-benchmarks of one run.
func BenchmarkStatusRead(b *testing.B) {
	h := startHarness(b, nil)
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "bench", LwM2MVersion: "1.1", RequestTimeout: 30 * time.Second}, nil)
	b.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		b.Fatal(err)
	}
	b.Run("composite", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.srv.DoNow(ctx, "bench", dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: firmwareStatus}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("separate", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.srv.DoNow(ctx, "bench", dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(5, 0)}); err != nil {
				b.Fatal(err)
			}
			if _, err := h.srv.DoNow(ctx, "bench", dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 3)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
