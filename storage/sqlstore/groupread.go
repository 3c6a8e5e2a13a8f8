package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// groupRead is the read side of the group commit, for PostgreSQL: concurrent lookups of one
// query by key (the NoSec credential check and the device attributes of every Register and
// Update) wait on a bounded queue, and a reader goroutine takes every lookup waiting (up to
// maxBatch) and answers them with one query over an array of their keys. A lookup costs
// PostgreSQL a share of one statement instead of a statement and a round trip of its own,
// which made up most of the database's CPU per registration. It reads the database like a
// direct lookup (no cache, nothing to invalidate): a lookup starts after its caller asked and
// sees every write committed before.
type groupRead[T any] struct {
	db *sql.DB
	// query has one parameter, an array of keys ($1, text[]), and returns the key of each row
	// as its first column: SELECT key, ... FROM t WHERE key = ANY($1).
	query string
	scan  func(sc scanner) (key string, v T, err error)
	// A batch is one statement (lookup): pgx's cached statement, parsed once per connection,
	// on a pool whose sessions run under plan_cache_mode = force_custom_plan (openLookupDB), so
	// that each batch is planned for the table as it is. A cached generic plan made while the table was empty scans it whole once it holds
	// the fleet (0.3-1.5 ms instead of 6 us a batch, measured; TestGroupReadPlan); a lookup by
	// one primary key never has that problem, an array of keys does.
	queue    chan *readReq[T]
	maxBatch int
	// statements counts the statements sent to PostgreSQL, for tests of the batch's shape.
	statements atomic.Int64

	mu     sync.RWMutex // held for reading while queueing, for writing by close
	closed bool
	wg     sync.WaitGroup
}

type readReq[T any] struct {
	key  string
	done chan readRes[T] // buffered: the reader never waits for the caller
}

type readRes[T any] struct {
	v   T
	ok  bool
	err error
}

// newGroupRead starts readers goroutines answering query.
func newGroupRead[T any](db *sql.DB, query string, scan func(scanner) (string, T, error), readers, queue, maxBatch int) *groupRead[T] {
	g := &groupRead[T]{db: db, query: query, scan: scan, queue: make(chan *readReq[T], queue), maxBatch: maxBatch}
	g.wg.Add(readers)
	for range readers {
		go g.run()
	}
	return g
}

// get returns the row of key (ok false when there is none), or ctx's error when ctx ends first.
func (g *groupRead[T]) get(ctx context.Context, key string) (T, bool, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, false, err
	}
	req := &readReq[T]{key: key, done: make(chan readRes[T], 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return zero, false, ErrClosed
	}
	select {
	case g.queue <- req:
	case <-ctx.Done():
		g.mu.RUnlock()
		return zero, false, ctx.Err()
	}
	g.mu.RUnlock()
	select {
	case res := <-req.done:
		return res.v, res.ok, res.err
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
}

// stmts is how many statements the lookups sent to PostgreSQL.
func (g *groupRead[T]) stmts() int64 { return g.statements.Load() }

// close stops taking lookups, answers those queued and waits for the readers.
func (g *groupRead[T]) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *groupRead[T]) run() {
	defer g.wg.Done()
	batch := make([]*readReq[T], 0, g.maxBatch)
	for req := range g.queue {
		batch = append(batch[:0], req)
	fill:
		for len(batch) < g.maxBatch {
			select {
			case req, ok := <-g.queue:
				if !ok {
					break fill
				}
				batch = append(batch, req)
			default:
				break fill
			}
		}
		g.answer(batch)
		clear(batch)
	}
}

// answer runs the query for batch's keys and hands each caller its row or the query's error.
func (g *groupRead[T]) answer(batch []*readReq[T]) {
	keys := make([]string, 0, len(batch))
	seen := make(map[string]struct{}, len(batch))
	for _, req := range batch {
		if _, dup := seen[req.key]; !dup {
			seen[req.key] = struct{}{}
			keys = append(keys, req.key)
		}
	}
	rows, err := g.lookup(keys)
	for _, req := range batch {
		v, ok := rows[req.key]
		req.done <- readRes[T]{v: v, ok: ok, err: err}
	}
}

// lookup runs the query under batchTimeout (not a caller's context: one caller giving up must
// not fail the others' lookups), as pgx's cached statement: one statement, one round trip. The
// pool's sessions plan every statement for its parameters (openLookupDB), so each batch is
// planned for these keys all the same. Against BEGIN, SET LOCAL plan_cache_mode =
// force_custom_plan, the query and COMMIT in one pipeline on the shared pool, PostgreSQL's CPU
// per batch of 7 lookups fell from 43-47 us to 22-25 us (pgbench, the same statements,
// December 2026); before that, the query parsed and planned per batch (QueryExecModeExec)
// through database/sql cost more again (BenchmarkLookupsParallel/postgres).
func (g *groupRead[T]) lookup(keys []string) (map[string]T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	conn, err := g.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("group read: %w", err)
	}
	defer conn.Close()
	var out map[string]T
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("needs a pgx connection, got %T", dc)
		}
		g.statements.Add(1)
		rows, err := sc.Conn().Query(ctx, g.query, keys)
		if err != nil {
			return err
		}
		out, err = g.collect(rows, len(keys))
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("group read: %w", err)
	}
	return out, nil
}

// collect scans the rows of a lookup into a map by key.
func (g *groupRead[T]) collect(rows pgx.Rows, n int) (map[string]T, error) {
	out := make(map[string]T, n)
	for rows.Next() {
		k, v, err := g.scan(rows)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
