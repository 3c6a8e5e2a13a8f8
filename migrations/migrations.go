// Package migrations holds lwota's database schema as goose SQL migrations, one folder per dialect,
// embedded so that storage/sqlstore applies them at open; README.md describes every table.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

// Dialect folders inside FS.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// For returns the migrations of one dialect (SQLite or Postgres), with the .sql files at the root
// as goose's Provider expects them.
func For(dialect string) (fs.FS, error) {
	switch dialect {
	case SQLite, Postgres:
		return fs.Sub(files, dialect)
	}
	return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
}
