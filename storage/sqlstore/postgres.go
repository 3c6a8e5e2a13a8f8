package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

var postgresDialect = dialect{
	name:     "postgres",
	goose:    goose.DialectPostgres,
	numbered: true,
	// One writer: its batches are twice as large as each of two writers', so half the commits,
	// each a BEGIN, COMMIT and WAL flush (some 180 us of PostgreSQL's CPU a batch): PostgreSQL's
	// CPU per Update 10-11 us against 12-13 with two writers, lwota's 21-23 against 21-25, per
	// Register 21-24 against 24-35 (four alternating pairs of lwota bench --client raw
	// --postgres auto --updates 5, load 14-20, December 2026). Two writers took it from 36-47 to
	// 27-39 us against four before. A writer's batches are bounded by maxBatch: at a commit
	// latency L it stores at most maxBatch/L writes a second. 512 keeps the ceiling the two
	// writers of 256 had (100,000/s at 5 ms): a disk with slow flushes caps one writer at half
	// of it otherwise. Below that rate a batch is what waited during the last commit, so the
	// bound changes nothing (lwota bench's 256 in flight never fill it).
	writers:     1,
	readers:     2, // per lookup (groupread.go)
	queue:       4096,
	maxBatch:    512,
	maxReaders:  10,
	lookupConns: 4, // the group reads' own pool (groupread.go): 16 connections in all, as before it
	pipelined:   true,
	groupReads:  true,
}

// openLookupDB opens the pool of the group reads (groupread.go): sessions that plan every
// statement for its parameters (SET plan_cache_mode = force_custom_plan once a connection is
// made; a SET rather than a startup parameter, which a connection pooler such as PgBouncer
// refuses), so that a lookup batch is its one cached statement, without the BEGIN, SET LOCAL
// and COMMIT around it that the shared pool's connections need to plan it so. conns bounds it:
// the readers of both lookups share it, and a reader waiting for a connection lets its batch
// grow.
func openLookupDB(cfg *pgx.ConnConfig, conns int) *sql.DB {
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET plan_cache_mode = force_custom_plan")
		return err
	}))
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db
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
	s := newStore(logger, d, db, db, openLookupDB(cfg, d.lookupConns))
	s.pg = cfg
	return s, nil
}
