package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// SQLite's group reads. A point read through database/sql costs about 8 µs of CPU on SQLite
// (BenchmarkHasCredentialParallel, December 2026), and little of it is the index probe: the
// pool's locking, the statement's read transaction (a shared lock on the WAL index, taken and
// released with system calls) and its halt and reset are paid per statement. A batch pays them
// once for all its keys. The keys travel as one JSON array, read by json_each, so one prepared
// statement serves every batch size.
//
// A batch is exact in the same way a point read is: each statement is a read transaction of its
// own (autocommit) that starts after every caller in the batch asked, so it sees every write
// committed before, by this process's writer or by any other process on the same file (a CLI
// command, for one). Nothing is remembered between batches.

// sqliteGroupReaders is how many batches run at once on SQLite: one. The reader's statement
// costs about as much CPU as a point read, so a batch saves only when it holds several keys, and
// it holds the keys that came while the previous one ran. With two readers they took 1.3-1.6
// lookups a statement and saved nothing (8 µs a check); with one, 4-5 lookups a statement and
// 3.6-4.1 µs a check (BenchmarkHasCredentialParallel, 256 goroutines, 2 busy cores). The busier
// the process, the later the reader runs and the larger its batch.
const sqliteGroupReaders = 1

// newSQLiteGroupRead is newGroupRead for SQLite: query has one parameter, a JSON array of
// keys: SELECT key, ... FROM t WHERE key IN (SELECT value FROM json_each(?)). Its statements
// run on the read pool through the store's prepared statements.
func newSQLiteGroupRead[T any](s *Store, query string, scan func(scanner) (string, T, error)) *groupRead[T] {
	d := s.dialect
	g := &groupRead[T]{db: s.db, query: query, scan: scan, queue: make(chan *readReq[T], d.queue), maxBatch: d.maxBatch}
	g.fetch = func(keys []string) (map[string]T, error) { return g.lookupSQLite(s, keys) }
	g.start(sqliteGroupReaders)
	return g
}

// lookupSQLite runs the query for keys. Its context never ends: a read on a query_only
// connection in WAL mode never waits for a writer, and a context that can end costs modernc's
// watcher goroutine per statement (pointRead); one caller giving up must not fail the others.
func (g *groupRead[T]) lookupSQLite(s *Store, keys []string) (map[string]T, error) {
	arg, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("group read: %w", err)
	}
	ctx := context.Background()
	g.statements.Add(1)
	rows, err := s.query(ctx, g.query, string(arg))
	if err != nil {
		return nil, fmt.Errorf("group read: %w", err)
	}
	out, err := collectByKey(rows, len(keys), g.scan)
	if err != nil {
		return nil, fmt.Errorf("group read: %w", err)
	}
	return out, nil
}

// collectByKey reads every row with scan into a map by key and closes rows.
func collectByKey[T any](rows *sql.Rows, n int, scan func(scanner) (string, T, error)) (map[string]T, error) {
	defer rows.Close()
	out := make(map[string]T, n)
	for rows.Next() {
		k, v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// groupReadable reports whether key travels through a JSON array unchanged: encoding/json
// replaces invalid UTF-8 with U+FFFD, and a NUL inside a TEXT value is not something to trust
// SQLite's JSON functions and comparisons with, so such a key (no endpoint a device can register as, but the API may be asked
// about anything) is looked up by a point read instead, which binds it as it is.
func groupReadable(key string) bool {
	return utf8.ValidString(key) && !strings.ContainsRune(key, 0)
}
