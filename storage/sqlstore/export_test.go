package sqlstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/lwota/lwota/server/registration"
)

// SchemaOf renders a SQLite file's schema and migration history, to compare across reopens.
func SchemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sqliteDB(path + "?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out string
	for _, q := range []string{
		"SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema ORDER BY name",
		"SELECT version_id || ' ' || is_applied FROM goose_db_version ORDER BY id",
	} {
		rows, err := db.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out += line + "\n"
		}
		rows.Close()
	}
	return out
}

// ForgetFirmwareKeys makes every registration look as if stored before migration 00009.
func ForgetFirmwareKeys(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.writeDB.ExecContext(context.Background(), "UPDATE registrations SET firmware_key = NULL"); err != nil {
		t.Fatal(err)
	}
}

// CommitNoSecTouches commits the NoSec touches of regs as one batch of the writer (its
// transaction, pipeline and merging), as a batch of that size under load would: what a benchmark
// of the cost per batch size measures. The first error of a touch is returned.
func CommitNoSecTouches(s *Store, regs []*registration.Registration) error {
	ctx := context.Background()
	batch := make([]*write, 0, len(regs))
	for _, r := range regs {
		stmts, err := s.touchStmts(r, true)
		if err != nil {
			return err
		}
		batch = append(batch, &write{ctx: ctx, key: r.Endpoint, stmts: stmts, done: make(chan error, 1), noMatch: errNoSecMissed})
	}
	commitAsWriter(s, batch)
	for _, op := range batch {
		if err := <-op.done; err != nil {
			return fmt.Errorf("touch of %s: %w", op.key, err)
		}
	}
	return nil
}
