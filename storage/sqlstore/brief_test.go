package sqlstore_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
)

// TestListBrief: a brief list (what a campaign's selection reads) has every field a selector, an
// image target or Online looks at, with labels, and nothing else (no object list to decode);
// the object filter still applies. On SQLite and PostgreSQL.
func TestListBrief(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, b.dsn(t))
			ctx := context.Background()
			for i := range 3 {
				ep := fmt.Sprintf("brief-%d", i)
				r := benchRegistration(ep)
				r.Manufacturer, r.Model, r.DeviceType = "Acme", "m-1", "meter"
				if err := s.SaveRegistration(ctx, r); err != nil {
					t.Fatal(err)
				}
				if err := s.SetLabels(ctx, ep, map[string]string{"site": "north", "n": fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
			five := uint16(5)
			full, err := s.ListRegistrations(ctx, registration.Filter{EndpointPrefix: "brief-", ObjectID: &five})
			if err != nil || len(full) != 3 || len(full[0].Objects) == 0 {
				t.Fatalf("full list = %d, %v", len(full), err)
			}
			brief, err := s.ListRegistrations(ctx, registration.Filter{EndpointPrefix: "brief-", ObjectID: &five, Brief: true})
			if err != nil || len(brief) != 3 {
				t.Fatalf("brief list = %d, %v; want 3", len(brief), err)
			}
			for i, r := range brief {
				if r.Objects != nil || r.ContentFormats != nil {
					t.Fatalf("brief %s carries objects %v, formats %v", r.Endpoint, r.Objects, r.ContentFormats)
				}
				if !maps.Equal(r.Labels, full[i].Labels) || len(r.Labels) != 2 {
					t.Fatalf("brief %s labels %v, want %v", r.Endpoint, r.Labels, full[i].Labels)
				}
				f := full[i]
				want := registration.Registration{Endpoint: f.Endpoint, ID: f.ID, Lifetime: f.Lifetime, QueueMode: f.QueueMode,
					RegisteredAt: f.RegisteredAt, UpdatedAt: f.UpdatedAt, DeregisteredAt: f.DeregisteredAt,
					FirmwareVersion: f.FirmwareVersion, Manufacturer: f.Manufacturer, Model: f.Model, DeviceType: f.DeviceType}
				got := *r
				got.Labels = nil
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("brief %s = %+v\nwant %+v", r.Endpoint, got, want)
				}
				if now := time.Now(); r.Online(now) != f.Online(now) || r.ExpiresAt() != f.ExpiresAt() {
					t.Fatalf("brief %s online %v until %v, full %v until %v", r.Endpoint, r.Online(now), r.ExpiresAt(), f.Online(now), f.ExpiresAt())
				}
			}
			seven := uint16(7)
			if none, err := s.ListRegistrations(ctx, registration.Filter{EndpointPrefix: "brief-", ObjectID: &seven, Brief: true}); err != nil || len(none) != 0 {
				t.Fatalf("brief list with object 7 = %d, %v; want none", len(none), err)
			}
		})
	}
}

// BenchmarkListBrief lists 10,000 registrations (SQLite), in full and briefly, as a campaign's
// selection does; cpu-ms/op is the process's CPU per list.
func BenchmarkListBrief(b *testing.B) {
	s := open(b, backends[0].dsn(b))
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 16 { // at once, so that the writer batches them
		wg.Go(func() {
			for i := w; i < 10000; i += 16 {
				if err := s.SaveRegistration(ctx, benchRegistration(fmt.Sprintf("dev-%05d", i))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, brief := range []bool{false, true} {
		b.Run(fmt.Sprintf("brief=%v", brief), func(b *testing.B) {
			cpu0, n := processCPU(), 0
			for b.Loop() {
				n++
				rs, err := s.ListRegistrations(ctx, registration.Filter{EndpointPrefix: "dev-", Brief: brief})
				if err != nil || len(rs) != 10000 {
					b.Fatalf("list = %d, %v", len(rs), err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(n), "cpu-ms/op")
		})
	}
}
