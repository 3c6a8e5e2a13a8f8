package sqlstore_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

// benchRegistration is a typical registration: a handful of objects, an address, times.
func benchRegistration(ep string) *registration.Registration {
	now := time.Now()
	return &registration.Registration{
		ID: "rd-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 300, Binding: "U", RootPath: "/",
		ContentFormats: []uint16{uint16(lwm2m.FormatSenMLCBOR), uint16(lwm2m.FormatTLV)},
		Objects: []registration.ObjectLink{
			{Path: lwm2m.NewPath(1, 0)}, {Path: lwm2m.NewPath(3, 0)}, {Path: lwm2m.NewPath(4, 0)},
			{Path: lwm2m.NewPath(5), Version: "1.1"}, {Path: lwm2m.NewPath(5, 0)}, {Path: lwm2m.NewPath(3303, 0)},
		},
		Addr:         transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort("192.0.2.10:56830")},
		RegisteredAt: now, UpdatedAt: now, LastSeen: now, FirmwareVersion: "1.4.2",
	}
}

// benchRegistrations is n typical registrations (benchRegistration), endpoints urn:imei:0... on.
func benchRegistrations(n int) []*registration.Registration {
	regs := make([]*registration.Registration, n)
	for i := range regs {
		regs[i] = benchRegistration(fmt.Sprintf("urn:imei:%015d", i))
	}
	return regs
}

// BenchmarkSaveRegistration is the serial baseline: one caller, so every save is its own commit.
func BenchmarkSaveRegistration(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			s := open(b, be.dsn(b))
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := s.SaveRegistration(ctx, benchRegistration(fmt.Sprintf("urn:imei:%015d", i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}

// benchBackends adds SQLite with synchronous=FULL (an fsync per commit) to the test backends.
var benchBackends = append(backends[:len(backends):len(backends)], struct {
	name string
	dsn  func(t testing.TB) string
}{"sqlite-full", func(t testing.TB) string {
	return filepath.Join(t.TempDir(), "lwota.db") + "?synchronous=full"
}})

// BenchmarkSaveRegistrationParallel is many request workers registering distinct devices at
// once; group commit turns their saves into few transactions.
func BenchmarkSaveRegistrationParallel(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			s := open(b, dsn)
			ctx := context.Background()
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // 64 workers on 2 cores
			b.ResetTimer()
			start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ep := fmt.Sprintf("urn:imei:%015d", n.Add(1))
					if err := s.SaveRegistration(ctx, benchRegistration(ep)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "saves/s")
			reportCPU(b, cpu0, pg, "save")
		})
	}
}

// BenchmarkTouchRegistrationParallel is the steady state of a fleet: devices renewing their
// lifetime with an Update that changes nothing else, stored as a touch of five columns.
func BenchmarkTouchRegistrationParallel(b *testing.B) {
	for _, be := range benchBackends {
		b.Run(be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			s := open(b, dsn)
			ctx := context.Background()
			const fleet = 10000
			regs := benchRegistrations(fleet)
			for _, r := range regs {
				if err := s.SaveRegistration(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
			var wal func() int64
			if pg != nil {
				wal = pgWAL(b, dsn)
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := *regs[n.Add(1)%fleet]
					r.UpdatedAt = time.Now()
					r.LastSeen = r.UpdatedAt
					if err := s.TouchRegistration(ctx, &r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "touches/s")
			reportCPU(b, cpu0, pg, "touch")
			if pg != nil {
				b.ReportMetric(float64(wal())/float64(b.N), "pg-wal-B/touch")
				b.ReportMetric(100*hotShare(b, dsn, "registrations", int64(b.N)), "%hot-updates")
			}
		})
	}
}

// pgCPUOf is pgCPU for the postgres backend, nil for the others.
func pgCPUOf(b *testing.B, backend, dsn string) func() time.Duration {
	if backend != "postgres" {
		return nil
	}
	return pgCPU(b, dsn)
}

// reportCPU reports this process's CPU per operation since cpu0 (cpu-µs/op) and PostgreSQL's
// (pg-cpu-µs/op), when pg measures it.
func reportCPU(b *testing.B, cpu0 time.Duration, pg func() time.Duration, op string) {
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/"+op)
	if pg != nil {
		b.ReportMetric(float64(pg())/float64(b.N)/1e3, "pg-cpu-µs/"+op)
	}
}

// processCPU is the CPU time (user and system) of this process so far: on a shared machine
// the CPU per operation varies far less than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// credFleet is how many endpoints credentialFleet stores; every third has a credential.
const credFleet = 3000

// credentialFleet stores credFleet endpoints' credentials (every third endpoint has one) and,
// with regs, a registration of each, and returns the name of request i's endpoint: requests
// go round the fleet, and request i's endpoint has a credential when hasCredential(i).
func credentialFleet(b *testing.B, s *sqlstore.Store, regs bool) func(int64) string {
	b.Helper()
	ctx := context.Background()
	ep := func(i int64) string { return fmt.Sprintf("urn:imei:%015d", i%credFleet) }
	for i := range int64(credFleet) {
		if hasCredential(i) {
			if err := s.SaveCredential(ctx, sealedFor(ep(i))); err != nil {
				b.Fatal(err)
			}
		}
		if !regs {
			continue
		}
		if err := s.SaveRegistration(ctx, benchRegistration(ep(i))); err != nil {
			b.Fatal(err)
		}
	}
	return ep
}

// hasCredential reports whether credentialFleet gave request i's endpoint a credential.
func hasCredential(i int64) bool { return i%credFleet%3 == 0 }

// BenchmarkLookupsParallel is the per-request reads of a registration under load: many request
// workers asking HasCredential (the NoSec check of every plain-CoAP Register and Update) and
// StoredInfo (every Register) at once, for a fleet of which a third has credentials.
func BenchmarkLookupsParallel(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			s := open(b, dsn)
			ctx := context.Background()
			ep := credentialFleet(b, s, true)
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			b.ResetTimer()
			start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					has, err := s.HasCredential(ctx, ep(i))
					if err == nil && has != hasCredential(i) {
						err = fmt.Errorf("HasCredential(%s) = %v", ep(i), has)
					}
					if err == nil {
						_, err = s.StoredInfo(ctx, ep(i))
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
			reportCPU(b, cpu0, pg, "lookup")
		})
	}
}

// BenchmarkRegisterParallel is the store's part of the Register of a device that is not live (a
// restarted server, a lapsed device; the registration benchmark's new devices): the NoSec
// credential check, then the save that keeps the stored device attributes
// (SaveRegistrationKeepingInfo, "keep"), or the read of them and the save with them, as the
// registry did before registration.InfoKeeper ("read-save"). Half of the endpoints have a stored
// row, each Register a new id.
func BenchmarkRegisterParallel(b *testing.B) {
	for _, be := range backends {
		for _, mode := range []string{"keep", "read-save"} {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				dsn := be.dsn(b)
				s := open(b, dsn)
				ctx := context.Background()
				const fleet = 4000
				ep := func(i int64) string { return fmt.Sprintf("urn:imei:%015d", i) }
				for i := int64(0); i < fleet; i += 2 {
					r := benchRegistration(ep(i))
					r.Manufacturer, r.Model, r.FirmwareVersion = "Acme", "M1", "1.0.0"
					if err := s.SaveRegistration(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
				var n atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(32)
				b.ResetTimer()
				start, cpu0, pg := time.Now(), processCPU(), pgCPUOf(b, be.name, dsn)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						r := benchRegistration(ep(i % fleet))
						r.ID = fmt.Sprintf("id-%d", i)
						has, err := s.HasCredential(ctx, r.Endpoint)
						switch {
						case err != nil || has:
						case mode == "keep":
							err = s.SaveRegistrationKeepingInfo(ctx, r)
						default:
							var stored *registration.Registration
							if stored, err = s.StoredInfo(ctx, r.Endpoint); err == nil {
								r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType = stored.Manufacturer, stored.Model, stored.FirmwareVersion, stored.DeviceType
							}
							err = s.SaveRegistration(ctx, r)
						}
						if err != nil || has {
							b.Errorf("register %s: has credential %v, %v", r.Endpoint, has, err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registers/s")
				reportCPU(b, cpu0, pg, "register")
			})
		}
	}
}
