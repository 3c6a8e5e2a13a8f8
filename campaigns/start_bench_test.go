package campaigns_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
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
	store, m := startBenchManager(b)
	for _, exact := range []bool{true, false} {
		b.Run(map[bool]string{true: "select=sql", false: "select=fleet"}[exact], func(b *testing.B) {
			if exact {
				m.WithExactSelector(store)
			} else {
				m.WithExactSelector(nil)
			}
			var cpu time.Duration
			for i := 0; b.Loop(); i++ {
				cpu0 := processCPU()
				benchStart(ctx, b, m, i)
				cpu += processCPU() - cpu0
			}
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkCreateStartMarking is BenchmarkCreateStart10000/select=sql with a collection
// started beside each start, over a heap that holds 250,000 registrations (a registry's worth,
// ~150 MB): every start meets a mark phase, as the slowest starts of lwota bench fleet at
// 250,000 devices do. A start then pays for what it allocates in mark assists, and shares the
// machine with the mark workers. p50-ms and max-ms are the starts' times; marking=no is the
// same starts without the ballast and the collections.
func BenchmarkCreateStartMarking(b *testing.B) {
	ctx := context.Background()
	store, m := startBenchManager(b)
	m.WithExactSelector(store)
	for _, marking := range []bool{false, true} {
		b.Run(map[bool]string{false: "marking=no", true: "marking=250k"}[marking], func(b *testing.B) {
			var ballast map[string]*registration.Registration
			if marking {
				ballast = registrationBallast(250000)
				runtime.GC()
			}
			var times []time.Duration
			var cpu time.Duration
			for i := 0; b.Loop(); i++ {
				done := make(chan struct{})
				if marking {
					go func() { runtime.GC(); close(done) }()
				} else {
					close(done)
				}
				begin, cpu0 := time.Now(), processCPU()
				benchStart(ctx, b, m, i)
				times, cpu = append(times, time.Since(begin)), cpu+processCPU()-cpu0
				b.StopTimer()
				<-done
				b.StartTimer()
			}
			runtime.KeepAlive(ballast)
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2])/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(times[len(times)-1])/float64(time.Millisecond), "max-ms")
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// registrationBallast is n registrations as a registry holds them: by endpoint, each with its
// own id and endpoint strings, an object list shared by all, and its times.
func registrationBallast(n int) map[string]*registration.Registration {
	objects := []registration.ObjectLink{{}, {}, {}}
	now := time.Now()
	out := make(map[string]*registration.Registration, n)
	for i := range n {
		r := &registration.Registration{ID: fmt.Sprintf("id%014d", i), Endpoint: fmt.Sprintf("fleet-%07d", i), Version: "1.1",
			Lifetime: 600, Binding: "U", RootPath: "/", Objects: objects, RegisteredAt: now, UpdatedAt: now, LastSeen: now}
		out[r.Endpoint] = r
	}
	return out
}

// startBenchManager is a manager over a SQLite store of 20,000 devices, half of which (by
// endpoint prefix, dev-0 or dev-1) each benchStart selects.
func startBenchManager(b *testing.B) (*sqlstore.Store, *campaigns.Manager) {
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
	m := campaigns.New(campaigns.Config{}, store, &driver{store: store, now: clk.now, count: map[string]int{}}, storeFleet{store},
		imgs, nil, nil, nil, clk.now)
	return store, m
}

// benchStart creates and starts the i-th campaign (10,000 devices) and makes the answer's
// progress, timed; then aborts it, untimed, so that the next one can claim its devices.
func benchStart(ctx context.Context, b *testing.B, m *campaigns.Manager, i int) {
	c, sum, err := m.CreateCounted(ctx, campaigns.Spec{Name: "big", ImageID: "img", Query: fmt.Sprintf(`endpoint ^= "dev-%d"`, i%2),
		Plan: plan.Plan{Waves: waves(10, 100)}, Start: true}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if p := campaigns.ProgressFrom(c, sum, time.Now()); p.Total != 10000 {
		b.Fatalf("progress of %s: %+v", c.ID, p)
	}
	b.StopTimer()
	if _, err := m.Abort(ctx, c.ID, "bench", "next", false); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
