package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// readStmts prepares each fixed read query once. Without it database/sql re-parses the SQL on
// every call, and on SQLite that parse costs more than the lookup (the hot reads run per
// registration and per notification).
type readStmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (r *readStmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.m[q]; ok {
		return st, nil
	}
	st, err := r.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if r.m == nil {
		r.m = make(map[string]*sql.Stmt)
	}
	r.m[q] = st
	return st, nil
}

func (r *readStmts) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.m {
		st.Close()
	}
	r.m = nil
}

// query runs a fixed read query through its prepared statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.reads.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for one row; a prepare error surfaces from Scan.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := s.reads.get(ctx, q)
	if err != nil {
		return s.db.QueryRowContext(ctx, q, args...) // reports the same error through Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// pointRead returns the context for a read of a few columns by key that runs for every device
// request (the NoSec credential check, the device attributes a Register carries over). On
// SQLite it cannot be cancelled once started: modernc.org/sqlite starts a goroutine per
// statement to watch a context that can end, a good part of such a read's cost, and a read on a
// query_only connection in WAL mode never waits for a writer, so it ends within microseconds
// anyway. A context that has already ended still fails the read. On PostgreSQL, where the read
// crosses a network, ctx is kept.
func (s *Store) pointRead(ctx context.Context) context.Context {
	if s.dialect.name != "sqlite" || ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// scanner is what a row-scan function reads from: a *sql.Row or *sql.Rows.
type scanner = interface{ Scan(...any) error }

// collect reads every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
