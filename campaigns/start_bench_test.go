package campaigns_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// storeFleet is the fleet as stored: what server.Server's ListDevices reads when the devices
// are not in its registry.
type storeFleet struct{ *sqlstore.Store }

func (f storeFleet) Device(ctx context.Context, ep string) (*registration.Registration, error) {
	return f.GetRegistration(ctx, ep)
}

func (f storeFleet) ListDevices(ctx context.Context, flt registration.Filter) ([]*registration.Registration, error) {
	return f.ListRegistrations(ctx, flt)
}

// storeDevices stores n registrations made by device (and their labels, when it gives any),
// from 16 savers at once so that the store's writer batches them as it does a fleet's.
func storeDevices(tb testing.TB, store *sqlstore.Store, n int, device func(i int, now time.Time) (*registration.Registration, map[string]string)) {
	tb.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				r, labels := device(i, time.Now())
				if err := store.SaveRegistration(ctx, r); err != nil {
					errs <- err
					return
				}
				if labels == nil {
					continue
				}
				if err := store.SetLabels(ctx, r.Endpoint, labels); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkCreateStart10000 creates and starts campaigns over 10,000 of 20,000 stored devices
// (SQLite), and makes the answer's progress from the counts the create returns, as POST
// /campaigns with "start": true does (CreateCounted). Each is
// aborted, untimed, so that the next one can claim its devices. cpu-ms/op is the process's CPU
// per start (the store's writer included).
func BenchmarkCreateStart10000(b *testing.B) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(b.TempDir(), "lwota.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := store.SaveImage(ctx, &firmware.Image{ID: "img", Name: "fw", Version: imageVersion, Size: 1,
		SHA256: strings.Repeat("ab", 32), BlobKey: "images/sha256/" + strings.Repeat("ab", 32), CreatedAt: time.Now()}); err != nil {
		b.Fatal(err)
	}
	storeDevices(b, store, 20000, func(i int, now time.Time) (*registration.Registration, map[string]string) {
		return &registration.Registration{ID: fmt.Sprintf("r-%d", i), Endpoint: fmt.Sprintf("dev-%05d", i), Version: "1.1",
			Lifetime: 86400, Binding: "U", Model: "m1", FirmwareVersion: "1.0.0", RegisteredAt: now, UpdatedAt: now, LastSeen: now,
			Objects: []registration.ObjectLink{{}, {}, {}}, ContentFormats: []uint16{60, 11542}}, nil
	})
	clk := &clock{t: time.Now()}
	imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
	// select=sql is lwota serve's wiring (the store selects an exact selector's devices),
	// select=fleet the fleet listing them and the selector deciding each: the same-run baseline.
	for _, exact := range []bool{true, false} {
		b.Run(map[bool]string{true: "select=sql", false: "select=fleet"}[exact], func(b *testing.B) {
			m := campaigns.New(campaigns.Config{}, store, &driver{store: store, now: clk.now, count: map[string]int{}}, storeFleet{store},
				imgs, nil, nil, nil, clk.now)
			if exact {
				m.WithExactSelector(store)
			}
			var cpu time.Duration
			for i := 0; b.Loop(); i++ {
				cpu0 := processCPU()
				c, sum, err := m.CreateCounted(ctx, campaigns.Spec{Name: "big", ImageID: "img", Query: fmt.Sprintf(`endpoint ^= "dev-%d"`, i%2),
					Plan: plan.Plan{Waves: waves(10, 100)}, Start: true}, "bench")
				if err != nil {
					b.Fatal(err)
				}
				if p := campaigns.ProgressFrom(c, sum, clk.now()); p.Total != 10000 {
					b.Fatalf("progress of %s: %+v", c.ID, p)
				}
				cpu += processCPU() - cpu0
				b.StopTimer()
				if _, err := m.Abort(ctx, c.ID, "bench", "next", false); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
