package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// fleetBenchSize is the fleet of the fleet-query benchmarks.
const fleetBenchSize = 10000

// benchFleet stores fleetBenchSize registrations over 40 firmware versions and 4 models.
func benchFleet(b *testing.B, s *sqlstore.Store) {
	b.Helper()
	ctx := context.Background()
	errs := make(chan error, fleetBenchSize)
	for i := range fleetBenchSize {
		r := benchRegistration(fmt.Sprintf("urn:imei:%015d", i))
		r.FirmwareVersion = fmt.Sprintf("1.%d.%d", i%10, i%4)
		r.Model = fmt.Sprintf("M%d", i%4)
		go func() { errs <- s.SaveRegistration(ctx, r) }() // group commit: few transactions
	}
	for range fleetBenchSize {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFleetQueries: the fleet overview's aggregate and the device list's version
// comparison with its total, against the plain first page of the device list as the baseline.
func BenchmarkFleetQueries(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := open(b, be.dsn(b))
			benchFleet(b, s)
			ctx := context.Background()
			b.Run("list-page", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.ListRegistrations(ctx, registration.Filter{Limit: 51}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("list-firmware-lt", func(b *testing.B) {
				f := registration.Filter{FirmwareOp: "<", FirmwareVersion: "1.5", Limit: 51, Sort: registration.SortFirmware}
				for b.Loop() {
					if _, err := s.ListRegistrations(ctx, f); err != nil {
						b.Fatal(err)
					}
					if _, err := s.CountRegistrations(ctx, f); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("fleet-counts", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.FleetCounts(ctx, time.Now(), 50); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
