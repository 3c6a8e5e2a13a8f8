package sqlstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

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
			fsys, err := migrations.For(s.dialect.name)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(s.dialect.goose, s.writeDB, fsys, goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
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
