package sqlstore

import (
	"context"
	"testing"
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
