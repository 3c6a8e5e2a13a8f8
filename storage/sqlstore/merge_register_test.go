package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/pgtest"
)

// The Registers of a PostgreSQL batch run as one upsert of registrations, one of owner rows and
// one insert of webhook deliveries (merge.go); the Updates as one UPDATE and one owner upsert.
// Each device gets its own row, owner lease and delivery; a row PostgreSQL refuses (a NUL in a
// text column) fails alone and leaves nothing behind; an Update with a stale id fails alone and
// does not renew its owner's lease. On SQLite (no merging, NUL is just text) the same holds but
// for the refused rows.
func TestMergedRegisters(t *testing.T) {
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
		nul  bool // PostgreSQL refuses NUL in text
	}{
		{"sqlite", func(t testing.TB) string { return t.TempDir() + "/lwota.db" }, false},
		{"postgres", pgtest.Start, true},
	} {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.CreateSubscription(ctx, &webhooks.Subscription{ID: "hook", URL: "http://127.0.0.1:1/", Enabled: true,
				Kinds: []string{events.KindRegistration}, CreatedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			const grace = time.Minute
			s.OwnDevices(7, grace)
			const n = 300
			base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			ep := func(i int) string { return fmt.Sprintf("dev-%03d", i) }
			bad := func(i int) bool { return be.nul && i%13 == 5 }
			reg := func(i int) *registration.Registration {
				at := base.Add(time.Duration(i) * time.Millisecond)
				r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Version: "1.1", Lifetime: uint32(60 + i),
					Binding: "UQ", QueueMode: i%2 == 0, RootPath: "/", RegisteredAt: at, UpdatedAt: at, LastSeen: at,
					Addr:  transport.Addr{Network: transport.UDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i))},
					Model: "model-" + ep(i), FirmwareVersion: fmt.Sprintf("1.%d.0", i)}
				if bad(i) {
					r.Model = "bad\x00model"
				}
				return r
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n { // many at once, so that batches hold many
				wg.Go(func() { errs[i] = s.SaveRegistration(ctx, reg(i)) })
			}
			wg.Wait()
			for i := range n {
				want := reg(i)
				got, err := s.GetRegistration(ctx, ep(i))
				owner, oerr := s.DeviceOwner(ctx, ep(i))
				var deliveries int
				if err := s.db.QueryRowContext(ctx, s.dialect.rebind("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint = ?"), ep(i)).Scan(&deliveries); err != nil {
					t.Fatal(err)
				}
				if bad(i) {
					if errs[i] == nil || !errors.Is(err, registration.ErrNotFound) || oerr == nil || deliveries != 0 {
						t.Errorf("%s with a NUL: save %v; then get %v, owner %v, %d deliveries; want an error and nothing stored", ep(i), errs[i], err, oerr, deliveries)
					}
					continue
				}
				if errs[i] != nil || err != nil || oerr != nil {
					t.Fatalf("%s: save %v, get %v, owner %v", ep(i), errs[i], err, oerr)
				}
				if got.ID != want.ID || got.Lifetime != want.Lifetime || got.QueueMode != want.QueueMode || got.Model != want.Model ||
					got.FirmwareVersion != want.FirmwareVersion || got.Addr != want.Addr || !got.UpdatedAt.Equal(want.UpdatedAt) {
					t.Errorf("%s stored as %+v, want %+v", ep(i), got, want)
				}
				if owner.NodeID != 7 || !owner.LeaseUntil.Equal(want.ExpiresAt().Add(grace)) || !strings.HasSuffix(owner.PeerAddr, want.Addr.AddrPort.String()) {
					t.Errorf("%s owner %+v, want node 7, lease %v", ep(i), owner, want.ExpiresAt().Add(grace))
				}
				if deliveries != 1 {
					t.Errorf("%s: %d webhook deliveries, want 1", ep(i), deliveries)
				}
			}

			// Updates, every seventh with a stale id.
			later := base.Add(time.Hour)
			for i := range n {
				if bad(i) {
					continue
				}
				wg.Go(func() {
					r := reg(i)
					r.UpdatedAt, r.LastSeen = later, later
					if i%7 == 0 {
						r.ID = "stale"
					}
					errs[i] = s.TouchRegistration(ctx, r)
				})
			}
			wg.Wait()
			for i := range n {
				if bad(i) {
					continue
				}
				want := reg(i)
				wantLease := want.ExpiresAt().Add(grace)
				if i%7 == 0 {
					if !errors.Is(errs[i], registration.ErrNotFound) {
						t.Errorf("touch of %s with a stale id = %v, want ErrNotFound", ep(i), errs[i])
					}
				} else {
					if errs[i] != nil {
						t.Errorf("touch of %s = %v", ep(i), errs[i])
					}
					want.UpdatedAt = later
					wantLease = later.Add(time.Duration(want.Lifetime) * time.Second).Add(grace)
				}
				got, err := s.GetRegistration(ctx, ep(i))
				owner, oerr := s.DeviceOwner(ctx, ep(i))
				if err != nil || oerr != nil {
					t.Fatalf("%s: get %v, owner %v", ep(i), err, oerr)
				}
				if !got.UpdatedAt.Equal(want.UpdatedAt) || !owner.LeaseUntil.Equal(wantLease) {
					t.Errorf("%s after the touches: updated %v, lease %v; want %v, %v", ep(i), got.UpdatedAt, owner.LeaseUntil, want.UpdatedAt, wantLease)
				}
			}
		})
	}
}
