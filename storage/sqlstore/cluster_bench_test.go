package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/pgtest"
)

// BenchmarkOwnedRegistrationParallel measures what a cluster node adds to the registration
// path: the owner row in the same batch (OwnDevices), against the same store without it, on
// PostgreSQL, for Registers (save) and steady-state Updates (touch). Compare the pairs of one run.
func BenchmarkOwnedRegistrationParallel(b *testing.B) {
	for _, op := range []string{"save", "touch"} {
		for _, owned := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/owner=%v", op, owned), func(b *testing.B) {
				dsn := pgtest.Start(b)
				s := open(b, dsn)
				if owned {
					s.OwnDevices(1, time.Minute)
				}
				ctx := context.Background()
				const fleet = 10000
				regs := benchRegistrations(fleet)
				for _, r := range regs {
					if op != "touch" {
						break
					}
					if err := s.SaveRegistration(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
				var n atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(32)
				b.ResetTimer()
				start, cpu0, pg := time.Now(), processCPU(), pgCPU(b, dsn)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						var err error
						if op == "save" {
							err = s.SaveRegistration(ctx, benchRegistration(fmt.Sprintf("urn:imei:%015d", i)))
						} else {
							r := *regs[i%fleet]
							r.UpdatedAt = time.Now()
							r.LastSeen = r.UpdatedAt
							err = s.TouchRegistration(ctx, &r)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
				reportCPU(b, cpu0, pg, "op")
			})
		}
	}
}
