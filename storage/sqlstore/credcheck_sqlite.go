package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// credCheck answers the NoSec credential check (HasCredential) on SQLite: the same point read
// as before (SELECT 1 FROM device_credentials WHERE endpoint = ?, one read transaction of its
// own per check, so it sees every write committed before it, by this process's writer or by any
// other process on the file), run on a few connections of its own through the driver's
// interfaces, without database/sql. database/sql's pool, its locks and its Row and Rows cost a
// good part of the check on top of the statement (the check was 7.5-8.7 µs of CPU, with 256
// goroutines on 2 cores, BenchmarkHasCredentialParallel), and the check runs for every
// plain-CoAP Register, Update and De-register.
//
// A batch of checks per statement (a group read, as on PostgreSQL) measured worse in the server:
// a statement costs about what a point read does, and at 20,000-30,000 Updates/s on 2 cores
// about one check waited per statement, so the hand-off to the reader was added CPU.
type credCheck struct {
	open  func(ctx context.Context) (*credConn, error)
	conns chan *credConn // the idle connections; closed by close once it holds them all
	n     int
	once  sync.Once
}

// credConn is one query_only connection and the check's statement, prepared on it.
type credConn struct {
	conn driver.Conn
	stmt driver.StmtQueryContext
}

const credCheckQuery = "SELECT 1 FROM device_credentials WHERE endpoint = ?"

// credCheckConns is how many checks run at once: as many as the read pool has connections,
// which on SQLite is more than the cores that run them.
const credCheckConns = 4

func newCredCheck(ctx context.Context, c driver.Connector, n int) (*credCheck, error) {
	k := &credCheck{conns: make(chan *credConn, n), n: n}
	k.open = func(ctx context.Context) (*credConn, error) {
		conn, err := c.Connect(ctx)
		if err != nil {
			return nil, err
		}
		pc, ok := conn.(driver.ConnPrepareContext)
		if !ok {
			conn.Close()
			return nil, fmt.Errorf("driver connection %T cannot prepare with a context", conn)
		}
		st, err := pc.PrepareContext(ctx, credCheckQuery)
		if err != nil {
			conn.Close()
			return nil, err
		}
		qs, ok := st.(driver.StmtQueryContext)
		if !ok {
			st.Close()
			conn.Close()
			return nil, fmt.Errorf("driver statement %T cannot query with a context", st)
		}
		return &credConn{conn, qs}, nil
	}
	for range n {
		cc, err := k.open(ctx)
		if err != nil {
			close(k.conns)
			for cc := range k.conns {
				cc.close()
			}
			return nil, fmt.Errorf("credential check connection: %w", err)
		}
		k.conns <- cc
	}
	return k, nil
}

func (cc *credConn) close() {
	cc.stmt.(driver.Stmt).Close()
	cc.conn.Close()
}

// has reports whether endpoint has a credential. It waits for a connection under ctx; the read
// itself runs under a context that never ends, as pointRead's do (no watcher goroutine per
// statement; a query_only read in WAL mode never waits for a writer).
func (k *credCheck) has(ctx context.Context, endpoint string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var cc *credConn
	select {
	case c, ok := <-k.conns:
		if !ok {
			return false, ErrClosed
		}
		cc = c
	case <-ctx.Done():
		return false, ctx.Err()
	}
	has, err := cc.query(endpoint)
	if err != nil {
		// A connection that failed is replaced if it can be: a broken one must not fail
		// every check after it.
		if fresh, oerr := k.open(context.WithoutCancel(ctx)); oerr == nil {
			cc.close()
			cc = fresh
		}
	}
	k.conns <- cc
	return has, err
}

func (cc *credConn) query(endpoint string) (bool, error) {
	rows, err := cc.stmt.QueryContext(context.Background(), []driver.NamedValue{{Ordinal: 1, Value: endpoint}})
	if err != nil {
		return false, err
	}
	dest := make([]driver.Value, 1)
	err = rows.Next(dest)
	cerr := rows.Close()
	switch {
	case err == nil:
		return true, cerr
	case errors.Is(err, io.EOF):
		return false, cerr
	}
	return false, err
}

// close waits for the checks in progress and closes the connections; checks after it fail
// with ErrClosed.
func (k *credCheck) close() {
	k.once.Do(func() {
		held := make([]*credConn, 0, k.n)
		for range k.n {
			held = append(held, <-k.conns)
		}
		close(k.conns)
		for _, cc := range held {
			cc.close()
		}
	})
}
