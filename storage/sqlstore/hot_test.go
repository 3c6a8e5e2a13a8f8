package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/pgtest"
)

// On PostgreSQL a registration Update (its touch) and the owner row it renews are HOT updates
// (migration 00016): no indexed column changes, so PostgreSQL writes no index entry and keeps
// the new row version on the page of the old one. With expires_at and lease_until indexed, none
// were.
func TestHOTUpdates(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.OwnDevices(3, time.Minute)
	const n, rounds = 200, 3
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ep := func(i int) string { return fmt.Sprintf("dev-%03d", i) }
	for i := range n {
		r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: base, UpdatedAt: base, LastSeen: base, Model: "m", FirmwareVersion: "1.0.0"}
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= rounds; round++ {
		at := base.Add(time.Duration(round) * time.Minute)
		for i := range n {
			r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Lifetime: 60, UpdatedAt: at, LastSeen: at}
			if err := s.TouchRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A backend reports its counts when idle or when it ends: close the writers' connections
	// and read the counts from a new one until they hold every touch.
	s.Close()
	s, err = Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, table := range []string{"registrations", "device_owners"} {
		var upd, hot int64
		deadline := time.Now().Add(2 * time.Minute)
		for {
			conn, err := s.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = conn.QueryRowContext(ctx, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&upd, &hot)
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			if upd >= n*rounds || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: %d updates, %d of them HOT", table, upd, hot)
		if upd < n*rounds || hot < upd*9/10 {
			t.Errorf("%s: %d updates, %d of them HOT; want at least %d updates, 90%% HOT", table, upd, hot, n*rounds)
		}
	}
}
