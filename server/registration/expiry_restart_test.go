package registration_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/pgtest"
)

// The expiry sweep after a restart works from the expiry an Update stored (a touch of the row,
// whose expires_at is not indexed since migration 00016), on SQLite and PostgreSQL: a device
// that renewed its lifetime before the restart is not expired at its first registration's end,
// but at its Update's; a device that never renewed is, and a second restart leaves it out.
func TestUpdatedExpiryAfterRestart(t *testing.T) {
	for _, be := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "reg.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
	} {
		t.Run(be.name, func(t *testing.T) {
			f := &fixture{clock: &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}, rec: &recorder{}, path: be.dsn(t)}
			f.open(t)
			renewing, idle := peer(40000, ""), peer(40001, "")
			resp := f.do(renewing, request(transport.POST, "/rd", "</3/0>", "ep=renewing", "lt=30"))
			if resp.Code != transport.Created {
				t.Fatalf("register answered %s", resp.Code)
			}
			loc := "/" + strings.Join(resp.LocationPath, "/")
			if resp := f.do(idle, request(transport.POST, "/rd", "</3/0>", "ep=idle", "lt=30")); resp.Code != transport.Created {
				t.Fatalf("register answered %s", resp.Code)
			}
			f.clock.Add(20 * time.Second)
			if resp := f.do(renewing, request(transport.POST, loc, "")); resp.Code != transport.Changed {
				t.Fatalf("update answered %s", resp.Code)
			}

			f.open(t)                     // restart
			f.clock.Add(11 * time.Second) // 31 s after the Registers, 11 s after the Update
			if n := f.reg.ExpireNow(context.Background()); n != 1 {
				t.Fatalf("expired %d, want 1 (idle)", n)
			}
			if _, ok := f.reg.Get("idle"); ok {
				t.Fatal("idle still live past its lifetime")
			}
			if _, ok := f.reg.Get("renewing"); !ok {
				t.Fatal("renewing expired although its Update renewed it")
			}
			f.open(t) // restart again: idle stays gone
			if f.reg.Count() != 1 {
				t.Fatalf("after the second restart %d registrations, want 1", f.reg.Count())
			}
			f.clock.Add(20 * time.Second) // 31 s after the Update
			if n := f.reg.ExpireNow(context.Background()); n != 1 {
				t.Fatalf("expired %d, want 1 (renewing)", n)
			}
			if f.reg.Count() != 0 {
				t.Fatalf("%d registrations left", f.reg.Count())
			}
		})
	}
}
