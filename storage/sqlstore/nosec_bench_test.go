package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHasCredentialParallel is the NoSec credential check alone (every plain-CoAP
// Register, Update and De-register asks it), from 256 request goroutines at once, for a fleet
// of which a third has credentials: the guard of its CPU per check (cpu-µs/check).
func BenchmarkHasCredentialParallel(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			s := open(b, dsn)
			ctx := context.Background()
			ep := credentialFleet(b, s, false)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(128) // 256 goroutines on 2 cores
			b.ResetTimer()
			start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					has, err := s.HasCredential(ctx, ep(i))
					if err == nil && has != hasCredential(i) {
						err = fmt.Errorf("HasCredential(%s) = %v", ep(i), has)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
			reportCPU(b, cpu0, pg, "check")
		})
	}
}
