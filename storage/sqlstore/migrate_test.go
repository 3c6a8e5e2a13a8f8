package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/migrations"
	"github.com/lwota/lwota/storage/pgtest"
)

// TestMigrationsDownUp rolls every migration back and forward again on both backends, so that the
// Down sections are known to work before anyone needs them.
func TestMigrationsDownUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  string
	}{
		{"sqlite", filepath.Join(t.TempDir(), "lwota.db")},
		{"postgres", pgtest.Start(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, tc.dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			p := migrationProvider(t, s)
			if _, err := p.DownTo(ctx, 0); err != nil {
				t.Fatalf("down: %v", err)
			}
			if v, err := p.GetDBVersion(ctx); err != nil || v != 0 {
				t.Fatalf("version after down = %d, %v", v, err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		})
	}
}

// keptCampaign stores a running two-wave campaign "cmp_kept" with members (their CampaignID is
// set here) in a new store at dsn, for the migration tests that roll one migration back and
// forward with rows in place.
func keptCampaign(t *testing.T, dsn string, members []campaigns.Member) (*Store, *campaigns.Campaign) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Unix(1_800_000_000, 0)
	c := &campaigns.Campaign{ID: "cmp_kept", Name: "kept", ImageID: "img", State: campaigns.StateRunning, Version: 1,
		Plan: plan.Plan{Waves: make([]plan.Wave, 2)}, Gates: make([]plan.GateState, 2), CreatedAt: now, UpdatedAt: now}
	for i := range members {
		members[i].CampaignID = c.ID
	}
	ev := campaigns.Event{CampaignID: c.ID, At: now, To: campaigns.StateDraft, Actor: "test", Action: "create"}
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// migrateDownAndUp rolls s back to version and up again, calling check at each end ("at N").
func migrateDownAndUp(t *testing.T, s *Store, version int64, check func(when string)) {
	t.Helper()
	ctx := context.Background()
	p := migrationProvider(t, s)
	if _, err := p.DownTo(ctx, version); err != nil {
		t.Fatalf("down to %d: %v", version, err)
	}
	check(fmt.Sprintf("at %d", version))
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(fmt.Sprintf("at %d", v))
}

// migrationProvider is a goose provider of s's dialect's migrations on s's write connection.
func migrationProvider(t *testing.T, s *Store) *goose.Provider {
	t.Helper()
	fsys, err := migrations.For(s.dialect.name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(s.dialect.goose, s.writeDB, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
