package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// BenchmarkNoSecUpdateParallel is the store's part of a plain-CoAP (NoSec) Update over 10,000
// endpoints, a third of them with a credential (not registered, never touched): "check+touch" is the separate check
// and touch (HasCredential, then TouchRegistration: the path of a store without
// registration.NoSecToucher), "folded" the touch that checks the credential in its own statement
// (TouchRegistrationNoSec). cpu-µs/update is this process's CPU per Update, pg-cpu-µs/update
// PostgreSQL's.
func BenchmarkNoSecUpdateParallel(b *testing.B) {
	for _, be := range backends {
		for _, path := range []string{"check+touch", "folded"} {
			b.Run(be.name+"/"+path, func(b *testing.B) {
				dsn := be.dsn(b)
				s := open(b, dsn)
				ctx := context.Background()
				const fleet = 10000
				var regs []*registration.Registration
				var sealed []*credentials.Sealed
				for i := range fleet {
					r := benchRegistration(fmt.Sprintf("urn:imei:%015d", i))
					if i%3 == 0 {
						sealed = append(sealed, &credentials.Sealed{Endpoint: r.Endpoint, Identity: "id-" + r.Endpoint, Nonce: []byte{1}, SealedKey: []byte{2}})
					} else {
						regs = append(regs, r)
					}
				}
				if err := s.SaveCredentials(ctx, sealed); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup // the fleet registers many at once: batches, not a commit each
				errs := make(chan error, 32)
				for w := range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := w; i < len(regs); i += 32 {
							if err := s.SaveRegistration(ctx, regs[i]); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
				update := func(r *registration.Registration) error {
					if path == "folded" {
						return s.TouchRegistrationNoSec(ctx, r)
					}
					has, err := s.HasCredential(ctx, r.Endpoint)
					if err != nil || has {
						return fmt.Errorf("HasCredential: %v, %v", has, err)
					}
					return s.TouchRegistration(ctx, r)
				}
				var n atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(32)
				b.ResetTimer()
				start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r := *regs[n.Add(1)%int64(len(regs))]
						r.UpdatedAt = time.Now()
						r.LastSeen = r.UpdatedAt
						if err := update(&r); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
				reportCPU(b, cpu0, pg, "update")
			})
		}
	}
}

// BenchmarkNoSecTouchBatch is the cost of one batch of NoSec touches by its size, on PostgreSQL
// over a fleet of 10,000 registrations: the writer's batch under load (256 Updates in flight
// make batches of 60-120 on two cores) and its largest (256). PostgreSQL's CPU per touch is its
// fixed cost per batch (BEGIN, settings, COMMIT and its WAL flush) spread over the batch, plus
// the rows' lookups and HOT updates; a plan that scanned the table (a hash join chosen for a
// large batch) would show here as a cost per touch that grows with the batch.
func BenchmarkNoSecTouchBatch(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(fmt.Sprintf("postgres/%d", size), func(b *testing.B) {
			dsn := pgtest.Start(b)
			s := open(b, dsn)
			ctx := context.Background()
			const fleet = 10000
			regs := benchRegistrations(fleet)
			for i := 0; i < fleet; i += 500 { // registered many at once: batches, not a commit each
				var wg sync.WaitGroup
				errs := make(chan error, 500)
				for _, r := range regs[i:min(i+500, fleet)] {
					wg.Go(func() {
						if err := s.SaveRegistration(ctx, r); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			_, err = db.ExecContext(ctx, "ANALYZE registrations") // the planner knows the fleet
			db.Close()
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]*registration.Registration, size)
			next := 0
			b.ReportAllocs() // per batch: the writer's allocations per touch are these over size
			b.ResetTimer()
			start, cpu0, pg := time.Now(), processCPU(), pgCPU(b, dsn)
			for range b.N {
				at := time.Now()
				for j := range batch {
					r := *regs[next%fleet]
					next++
					r.UpdatedAt, r.LastSeen = at, at
					batch[j] = &r
				}
				if err := sqlstore.CommitNoSecTouches(s, batch); err != nil {
					b.Fatal(err)
				}
			}
			touches := float64(b.N * size)
			b.ReportMetric(touches/time.Since(start).Seconds(), "touches/s")
			b.ReportMetric(float64(processCPU()-cpu0)/touches/1e3, "cpu-µs/touch")
			b.ReportMetric(float64(pg())/touches/1e3, "pg-cpu-µs/touch")
		})
	}
}
