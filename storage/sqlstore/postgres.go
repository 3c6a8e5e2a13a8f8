package sqlstore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

var postgresDialect = dialect{
	name:       "postgres",
	goose:      goose.DialectPostgres,
	numbered:   true,
	writers:    4, // round trips overlap; PostgreSQL groups the WAL flushes of concurrent commits
	queue:      4096,
	maxBatch:   256,
	maxReaders: 12,
	pipelined:  true,
	groupReads: true,
}

// openPostgres opens one pgx pool for reads and writes. Migrations run under goose's advisory
// session lock, so several lwota processes may start against one database at once.
func openPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open postgres: %w", err) // pgx redacts the password
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("sqlstore: open postgres %s: %w", where, err)
	}
	d := &postgresDialect
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(d.writers + d.maxReaders)
	db.SetMaxIdleConns(d.writers + d.maxReaders)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fail(err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return fail(err)
	}
	if err := migrate(ctx, db, d, logger, goose.WithSessionLocker(locker)); err != nil {
		db.Close()
		return fail(err)
	}
	logger.InfoContext(ctx, "opened store", "backend", d.name, "database", where)
	s := newStore(logger, d, db, db)
	s.pg = cfg
	return s, nil
}
