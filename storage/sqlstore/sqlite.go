package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
)

var sqliteDialect = dialect{
	name:          "sqlite",
	goose:         goose.DialectSQLite3,
	writers:       1, // the one write connection
	queue:         4096,
	maxBatch:      512,
	maxReaders:    4,
	unboundedTx:   true,
	walCheckpoint: true,
}

// sqliteDSN is a parsed SQLite DSN: "[sqlite:[//]]PATH[?synchronous=normal|full]".
type sqliteDSN struct {
	path        string
	synchronous string // NORMAL or FULL
}

func parseSQLiteDSN(dsn string) (sqliteDSN, error) {
	rest := strings.TrimPrefix(dsn, "sqlite:")
	if rest != dsn {
		rest = strings.TrimPrefix(rest, "//") // sqlite:///var/lib/lwota.db
	}
	path, query, _ := strings.Cut(rest, "?")
	switch {
	case path == "":
		return sqliteDSN{}, errors.New("no file path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return sqliteDSN{}, fmt.Errorf("%q: want a plain file path", path)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return sqliteDSN{}, fmt.Errorf("parameters: %w", err)
	}
	out := sqliteDSN{path: path, synchronous: "NORMAL"}
	for k, v := range params {
		switch {
		case k == "synchronous" && len(v) == 1 && strings.EqualFold(v[0], "normal"):
		case k == "synchronous" && len(v) == 1 && strings.EqualFold(v[0], "full"):
			out.synchronous = "FULL"
		default:
			return sqliteDSN{}, fmt.Errorf("unsupported parameter %s=%s (want synchronous=normal or full)", k, strings.Join(v, ","))
		}
	}
	return out, nil
}

// openSQLite opens two pools on one file: the writer's single connection (WAL, BEGIN IMMEDIATE)
// and a few query-only connections for reads, which WAL lets run beside the writer.
func openSQLite(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	cfg, err := parseSQLiteDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open sqlite %q: %w", dsn, err)
	}
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("sqlstore: open sqlite %s: %w", cfg.path, err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.path), 0o750); err != nil {
		return fail(err)
	}
	const common = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	writeDB, err := sqliteDB(cfg.path + "?" + common +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(" + cfg.synchronous + ")&_txlock=immediate")
	if err != nil {
		return fail(err)
	}
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	var mode string
	if err := writeDB.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		writeDB.Close()
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		writeDB.Close()
		return fail(fmt.Errorf("journal mode is %q, not wal", mode))
	}
	d := &sqliteDialect
	if err := migrate(ctx, writeDB, d, logger); err != nil {
		writeDB.Close()
		return fail(err)
	}
	readConnector, err := sqlite.NewConnector(cfg.path + "?" + common + "&_pragma=query_only(1)")
	if err != nil {
		writeDB.Close()
		return fail(err)
	}
	readDB := sql.OpenDB(readConnector)
	readDB.SetMaxOpenConns(d.maxReaders)
	readDB.SetMaxIdleConns(d.maxReaders)
	if err := readDB.PingContext(ctx); err != nil {
		readDB.Close()
		writeDB.Close()
		return fail(err)
	}
	check, err := newCredCheck(ctx, readConnector, credCheckConns)
	if err != nil {
		readDB.Close()
		writeDB.Close()
		return fail(err)
	}
	logger.InfoContext(ctx, "opened store", "backend", d.name, "path", cfg.path, "synchronous", cfg.synchronous)
	s := newStore(logger, d, readDB, writeDB, nil)
	s.credCheck = check
	return s, nil
}

// sqliteDB opens a pool through the driver's connector rather than its global registration.
func sqliteDB(name string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(name)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}
