package migrations_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/lwota/lwota/migrations"
)

// TestDialectsAgree checks that every migration exists for both dialects and has both directions.
func TestDialectsAgree(t *testing.T) {
	names := map[string][]string{}
	for _, d := range []string{migrations.SQLite, migrations.Postgres} {
		fsys, err := migrations.For(d)
		if err != nil {
			t.Fatalf("For(%s): %v", d, err)
		}
		files, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("%s: no migrations", d)
		}
		for _, f := range files {
			b, err := fs.ReadFile(fsys, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, marker := range []string{"-- +goose Up", "-- +goose Down"} {
				if !strings.Contains(string(b), marker) {
					t.Errorf("%s/%s has no %q", d, f, marker)
				}
			}
		}
		names[d] = files
	}
	if !slices.Equal(names[migrations.SQLite], names[migrations.Postgres]) {
		t.Errorf("dialects differ: sqlite %q, postgres %q", names[migrations.SQLite], names[migrations.Postgres])
	}
	if _, err := migrations.For("mysql"); err == nil {
		t.Error("For(mysql) succeeded")
	}
}
