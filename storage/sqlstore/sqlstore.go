// Package sqlstore persists lwota's state (registrations, queued requests, observations, firmware
// images and signing keys) in SQLite or PostgreSQL, applying the embedded migrations at open and
// group-committing concurrent writes.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
)

// The interfaces *Store implements.
var (
	_ registration.Store     = (*Store)(nil)
	_ dm.QueueStore          = (*Store)(nil)
	_ dm.QueueCounter        = (*Store)(nil)
	_ registration.InfoStore = (*Store)(nil)
	_ registration.InfoSaver = (*Store)(nil)
	_ observe.Store          = (*Store)(nil)
)

// Store is a SQLite or PostgreSQL database holding lwota's state. Reads go straight to the
// database; writes go through the group-committing writer. It is safe for concurrent use.
type Store struct {
	log     *slog.Logger
	dialect *dialect
	db      *sql.DB // reads (and, on PostgreSQL, the writer's connections too)
	writeDB *sql.DB // the writer's pool; == db on PostgreSQL
	// lookupDB is the group reads' own pool on PostgreSQL (groupread.go), whose sessions plan
	// every statement for its parameters; nil on SQLite.
	lookupDB *sql.DB
	w        *writer
	q        queries
	reads    readStmts
	// queued is the registration id each endpoint's Register was last queued for webhooks by
	// this store (webhooks.go): an Update of the same registration skips the outbox statement.
	queued *lru.Cache[string, string]
	// owner, when set (OwnDevices), is the cluster node whose owner rows go with registrations.
	owner atomic.Pointer[owner]
	// pg is the PostgreSQL connection config, for the LISTEN connection; nil on SQLite.
	pg *pgx.ConnConfig
	// credExists and storedInfo answer HasCredential and StoredInfo on PostgreSQL, many
	// lookups per query (groupread.go); nil on SQLite, where each is a point read in-process.
	credExists *groupRead[struct{}]
	// credCheck answers HasCredential on SQLite, a point read on connections of its own
	// (credcheck_sqlite.go); nil on PostgreSQL.
	credCheck  *credCheck
	storedInfo *groupRead[*registration.Registration]
}

// Open opens the database named by dsn, applies pending migrations and starts the writer.
// dsn is a SQLite file path, optionally prefixed "sqlite:" (or "sqlite://") and followed by
// "?synchronous=full", or a "postgres://" / "postgresql://" URL. A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err = openPostgres(ctx, dsn, logger)
	case dsn == "":
		return nil, errors.New("sqlstore: open: empty DSN")
	case strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite:"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return nil, fmt.Errorf("sqlstore: open: unsupported DSN scheme %q (want a SQLite path or postgres://)", scheme)
	default:
		s, err = openSQLite(ctx, dsn, logger)
	}
	if err != nil {
		return nil, err
	}
	if err := s.backfillFirmwareKeys(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// newStore finishes Open once the backend's pools exist and the schema is current. lookupDB
// is the group reads' pool when the dialect has them (groupread.go), nil otherwise.
func newStore(logger *slog.Logger, d *dialect, db, writeDB, lookupDB *sql.DB) *Store {
	s := &Store{
		log:      logger,
		dialect:  d,
		db:       db,
		writeDB:  writeDB,
		lookupDB: lookupDB,
		q:        buildQueries(d),
		reads:    readStmts{db: db},
	}
	s.queued, _ = lru.New[string, string](queuedRegistrations) // fails only for a size below 1
	s.w = newWriter(writeDB, s.q.writes(), s.q.mergers(), d)
	if d.groupReads && lookupDB != nil {
		s.credExists = newGroupRead(lookupDB, d.rebind("SELECT endpoint FROM device_credentials WHERE endpoint = ANY(?)"),
			func(sc scanner) (string, struct{}, error) {
				var ep string
				err := sc.Scan(&ep)
				return ep, struct{}{}, err
			}, d.readers, d.queue, d.maxBatch)
		s.storedInfo = newGroupRead(lookupDB, d.rebind("SELECT endpoint, manufacturer, model, firmware_version, device_type FROM registrations WHERE endpoint = ANY(?)"),
			func(sc scanner) (string, *registration.Registration, error) {
				var r registration.Registration
				err := sc.Scan(&r.Endpoint, &r.Manufacturer, &r.Model, &r.FirmwareVersion, &r.DeviceType)
				return r.Endpoint, &r, err
			}, d.readers, d.queue, d.maxBatch)
	}
	return s
}

// Close waits for queued writes to finish, then closes the database. Calls after Close fail with
// ErrClosed.
func (s *Store) Close() error {
	s.w.close()
	if s.credExists != nil {
		s.credExists.close()
		s.storedInfo.close()
	}
	if s.credCheck != nil {
		s.credCheck.close()
	}
	s.reads.close()
	err := s.db.Close()
	if s.writeDB != s.db {
		err = errors.Join(err, s.writeDB.Close())
	}
	if s.lookupDB != nil {
		err = errors.Join(err, s.lookupDB.Close())
	}
	if err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

// Backend names the database in use: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.dialect.name }

// Ping checks that the database answers a query now (for readiness checks): a PostgreSQL
// server that is down or refuses connections fails it.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlstore: ping %s: %w", s.dialect.name, err)
	}
	return nil
}
