package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// stmt is one statement of a write.
type stmt struct {
	query string
	args  []any
}

// write is one caller's unit of work: its statements commit together or not at all.
type write struct {
	ctx   context.Context
	key   string // the shard key: writes of one key keep their order
	stmts []stmt
	done  chan error // buffered: the writer never waits for the caller
	// noMatch, when set, is the write's error if its last statement changes no row (doMatch).
	noMatch error
	// failed is the write's own error when its batch committed without it: a merged write
	// that matched no row (merge.go), which changed nothing and so needs no rollback.
	failed error
	// into, when set, receives the text columns of the one row the write's first statement
	// returns (RETURNING): values its caller learns from the database without a read of its own
	// (SaveRegistrationKeepingInfo). Only pipelined batches run such writes; the writer fills
	// into before it answers the write.
	into []*string
	// large: the write holds thousands of rows and its caller is waiting to answer a request
	// (doLarge); on SQLite the writer checkpoints after answering it, not inside its commit.
	large bool
}

// writer is the group commit. Callers queue writes on a bounded channel; each writer goroutine
// takes whatever is waiting (up to maxBatch), commits it in one transaction and then wakes every
// caller of the batch. On SQLite there is one such goroutine and it owns the only write
// connection, so writes are serialized without SQLITE_BUSY; on PostgreSQL a few run side by side.
// Writes are sharded by key (the endpoint), so two saves of one device's row commit in the order
// they were made even with several writer goroutines.
type writer struct {
	db       *sql.DB
	prepare  []string      // statements each writer goroutine prepares
	shards   []chan *write // one queue per writer goroutine
	maxBatch int
	// unboundedTx: transactions run without batchTimeout (dialect.unboundedTx).
	unboundedTx bool
	// pipelined: batches go through pgx in one pipeline (dialect.pipelined).
	pipelined bool
	// merge are the statements a pipelined batch may merge, by query (merge.go).
	merge map[string]*merger
	// roundTrips counts the round trips to PostgreSQL of pipelined commits, rollbacks included:
	// what a test of the pipeline's shape reads.
	roundTrips atomic.Int64
	// unprepared counts the statements committed without a prepared form (SQLite parsed them
	// for that one write), for tests: the writes made per device are all prepared.
	unprepared atomic.Int64
	// walCheckpoint: the database checkpoints a WAL (SQLite), see doLarge.
	walCheckpoint bool
	// beforeCheckpoint, when set, runs on the writer goroutine before a deferred checkpoint
	// (doLarge): what a test reads the WAL's state in.
	beforeCheckpoint atomic.Pointer[func()]

	// free are writes whose callers got their answer, with their channels (newWrite).
	free sync.Pool

	mu     sync.RWMutex // held for reading while queueing, for writing by close
	closed bool
	wg     sync.WaitGroup
}

// newWriter starts d.writers writer goroutines over db with d's queue, batch and commit settings.
func newWriter(db *sql.DB, prepare []string, merge map[string]*merger, d *dialect) *writer {
	w := &writer{db: db, prepare: prepare, merge: merge, maxBatch: d.maxBatch, unboundedTx: d.unboundedTx, pipelined: d.pipelined,
		walCheckpoint: d.walCheckpoint}
	w.wg.Add(d.writers)
	for range d.writers {
		ops := make(chan *write, max(d.queue/d.writers, 1))
		w.shards = append(w.shards, ops)
		go w.run(ops)
	}
	return w
}

// shard picks the queue for key (FNV-1a), so one key always lands on one writer goroutine.
func (w *writer) shard(key string) chan *write {
	if len(w.shards) == 1 {
		return w.shards[0]
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return w.shards[h%uint32(len(w.shards))]
}

// do queues stmts as one write and waits until they are committed, failed, or ctx ends. A write
// whose ctx ended before its batch started is not applied; one whose ctx ends while its batch
// commits may still be.
func (w *writer) do(ctx context.Context, key string, stmts ...stmt) error {
	op := w.newWrite(ctx, key, stmts)
	return w.queue(ctx, key, op)
}

// doInto is do for a write whose first statement returns one row (RETURNING), read into into
// before the write is answered; PostgreSQL only (pipelined).
func (w *writer) doInto(ctx context.Context, key string, into []*string, stmts ...stmt) error {
	op := w.newWrite(ctx, key, stmts)
	op.into = into
	return w.queue(ctx, key, op)
}

// doMatch is do for a write that must change an existing row: when its last statement affects
// no row, the write rolls back (alone, as any failing write) and returns noMatch.
func (w *writer) doMatch(ctx context.Context, key string, noMatch error, stmts ...stmt) error {
	op := w.newWrite(ctx, key, stmts)
	op.noMatch = noMatch
	return w.queue(ctx, key, op)
}

// newWrite returns a write of stmts, from the writes whose callers got their answer (queue):
// every Update is a write, and its struct and channel were a tenth of its allocations.
func (w *writer) newWrite(ctx context.Context, key string, stmts []stmt) *write {
	op, _ := w.free.Get().(*write)
	if op == nil {
		op = &write{done: make(chan error, 1)}
	}
	op.ctx, op.key, op.stmts = ctx, key, stmts
	return op
}

func (w *writer) queue(ctx context.Context, key string, op *write) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.shard(key) <- op:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case err := <-op.done:
		// The writer sends on done last and then forgets op: op is free again. A write whose
		// caller left on ctx is not, the writer may still hold it.
		*op = write{done: op.done}
		w.free.Put(op)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting writes, lets the writers drain the queue and waits for them.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, ops := range w.shards {
			close(ops)
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *writer) run(ops chan *write) {
	defer w.wg.Done()
	prepare := w.prepare
	if w.pipelined {
		prepare = nil // pgx prepares and caches them per connection
	}
	c := newCommitter(w.db, prepare)
	c.unbounded = w.unboundedTx
	c.pipelined = w.pipelined
	c.merge = w.merge
	c.trips = &w.roundTrips
	c.unprepared = &w.unprepared
	c.walCheckpoint = w.walCheckpoint
	c.beforeCheckpoint = &w.beforeCheckpoint
	defer c.close()
	batch := make([]*write, 0, w.maxBatch)
	for op := range ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		c.commit(batch)
		clear(batch)
	}
}

// committer is one writer goroutine's state: the package's write statements, prepared when it
// starts (before any transaction holds SQLite's only write connection), so that SQLite does not
// parse the same upsert for every write.
type committer struct {
	db        *sql.DB
	stmts     map[string]*sql.Stmt
	unbounded bool // no batchTimeout: see dialect.unboundedTx
	pipelined bool // commit through pgx's pipeline: see dialect.pipelined
	merge     map[string]*merger
	// trips counts the round trips of pipelined commits (writer.roundTrips).
	trips *atomic.Int64
	// unprepared is writer.unprepared.
	unprepared *atomic.Int64
	// keys is mergeableWith's count of a batch's keys, empty between batches.
	keys map[string]int
	// txStmts are the prepared statements bound to the transaction in progress, made once per
	// transaction and query rather than once per write.
	txStmts map[*sql.Stmt]*sql.Stmt
	// walCheckpoint, autoCheckpoint, walIndex and beforeCheckpoint are deferCheckpoint's:
	// whether the database checkpoints a WAL, its wal_autocheckpoint once read, its wal-index
	// file, the test hook.
	walCheckpoint    bool
	autoCheckpoint   int
	walIndex         string // the -shm file, once read (walFrames)
	beforeCheckpoint *atomic.Pointer[func()]
}

func newCommitter(db *sql.DB, queries []string) *committer {
	c := &committer{db: db, stmts: make(map[string]*sql.Stmt, len(queries)), txStmts: make(map[*sql.Stmt]*sql.Stmt),
		keys: make(map[string]int)}
	for _, q := range queries {
		if st, err := db.Prepare(q); err == nil {
			c.stmts[q] = st
		} // else: exec will run it unprepared and report the error there
	}
	return c
}

func (c *committer) close() {
	for _, st := range c.stmts {
		st.Close()
	}
}

// commit applies a batch in one transaction. If that fails, it retries each write in its own
// transaction so that one bad write fails alone and every caller gets its own error.
func (c *committer) commit(batch []*write) {
	live := make([]*write, 0, len(batch))
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	if after := c.deferCheckpoint(live); after != nil {
		defer after() // after every write of the batch is answered
	}
	err := c.tx(live)
	if err == nil || len(live) == 1 {
		for _, op := range live {
			if err == nil && op.failed != nil {
				op.done <- op.failed
				continue
			}
			op.done <- err
		}
		return
	}
	for _, op := range live {
		op.failed = nil
		err := c.tx([]*write{op})
		if err == nil && op.failed != nil {
			err = op.failed
		}
		op.done <- err
	}
}

// batchTimeout bounds one transaction, so that a database that stopped answering fails the
// writes instead of holding the writer (and Close) forever.
const batchTimeout = time.Minute

// tx runs the writes in one transaction. It does not use the callers' contexts: one caller giving
// up must not roll back the others' writes.
func (c *committer) tx(ops []*write) error {
	ctx := context.Background()
	if !c.unbounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, batchTimeout)
		defer cancel()
	}
	if c.pipelined {
		return c.pipelineTx(ctx, ops)
	}
	defer clear(c.txStmts)
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, op := range ops {
		if op.into != nil {
			_ = tx.Rollback()
			return errors.New("a write returning values needs a pipelined commit")
		}
		for i, s := range op.stmts {
			res, err := c.exec(ctx, tx, s)
			if err == nil && op.noMatch != nil && i == len(op.stmts)-1 {
				var n int64
				if n, err = res.RowsAffected(); err == nil && n == 0 {
					err = op.noMatch
				}
			}
			if err != nil {
				_ = tx.Rollback()
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// exec runs one statement in tx, through its prepared form when there is one.
func (c *committer) exec(ctx context.Context, tx *sql.Tx, s stmt) (sql.Result, error) {
	if st, ok := c.stmts[s.query]; ok {
		ts, ok := c.txStmts[st]
		if !ok {
			ts = tx.StmtContext(ctx, st)
			c.txStmts[st] = ts
		}
		return ts.ExecContext(ctx, s.args...)
	}
	if c.unprepared != nil {
		c.unprepared.Add(1)
	}
	return tx.ExecContext(ctx, s.query, s.args...)
}

// pipelineTx runs the writes in one PostgreSQL transaction with BEGIN, every statement and the
// COMMIT sent in one pipeline: one round trip whatever the batch's size (pgx prepares each
// statement once per connection, its statement cache). Merged groups (merge.go) go into the
// pipeline after the other writes. A write whose row a statement must change (doMatch, a merged
// touch) and did not fails alone, having changed nothing (see oneTrip), and the rest commits.
// The first failing statement makes PostgreSQL skip the rest of the pipeline, COMMIT included,
// and the transaction is rolled back, as tx does; a connection whose ROLLBACK failed is closed,
// so that the pool never hands out one left inside a transaction.
//
// A batch that oneTrip refuses (a write of several statements whose last must change a row, a
// merged group of several statements that checks rows) commits in a round trip of its own
// after the pipeline, the checked groups each taking a round trip per statement before it.
func (c *committer) pipelineTx(ctx context.Context, ops []*write) error {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("begin: pipelined commit needs a pgx connection, got %T", dc)
		}
		pc := sc.Conn()
		useEncodedArrays(pc.TypeMap())
		rollback := func(err error) error {
			c.trip()
			if _, rerr := pc.Exec(ctx, "ROLLBACK"); rerr != nil {
				_ = pc.Close(ctx)
			}
			return err
		}
		alone, groups := mergeableWith(ops, c.merge, c.keys)
		var piped, checked, after []*group
		for _, g := range groups {
			switch {
			case g.pipelined():
				piped = append(piped, g)
			case g.piped():
				checked = append(checked, g)
			default:
				after = append(after, g)
			}
		}
		one := oneTrip(alone, after)
		if !one {
			after, checked = append(after, checked...), nil
		}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		for _, op := range alone {
			for _, s := range op.stmts {
				b.Queue(s.query, s.args...)
			}
		}
		for _, g := range piped {
			if err := g.queue(b); err != nil {
				return err // nothing was sent: no transaction to roll back
			}
		}
		custom := slices.ContainsFunc(checked, func(g *group) bool { return g.ms[0].byIndex })
		if custom {
			// A byIndex statement in a pipeline: pgx's cached statement and its generic plan,
			// made without a sequential scan (see merger.byIndex). The settings end with the
			// transaction, after the statements that plan as they always did.
			b.Queue(byIndexSettings)
		}
		for _, g := range checked {
			if err := g.queue(b); err != nil {
				return err
			}
		}
		if one {
			b.Queue("COMMIT")
		}
		c.trip()
		br := pc.SendBatch(ctx, b)
		fail := func(err error) error {
			_ = br.Close()
			return rollback(err)
		}
		if _, err := br.Exec(); err != nil {
			return fail(fmt.Errorf("begin: %w", err))
		}
		for _, op := range alone {
			for i := range op.stmts {
				if i == 0 && op.into != nil {
					rows, err := br.Query()
					if err == nil {
						err = scanInto(rows, op.into)
					}
					if err != nil {
						rows.Close()
						return fail(err)
					}
					continue
				}
				tag, err := br.Exec()
				if err == nil && op.noMatch != nil && i == len(op.stmts)-1 && tag.RowsAffected() == 0 {
					if one { // its only statement changed nothing: it fails alone
						op.failed = op.noMatch
						continue
					}
					err = op.noMatch
				}
				if err != nil {
					return fail(err)
				}
			}
		}
		for _, g := range piped {
			for i, m := range g.ms {
				if m.ret > 0 {
					rows, err := br.Query()
					if err == nil {
						err = g.fill(i, rows)
					}
					if err != nil {
						rows.Close()
						return fail(err)
					}
					continue
				}
				if _, err := br.Exec(); err != nil {
					return fail(err)
				}
			}
		}
		if custom {
			if _, err := br.Exec(); err != nil {
				return fail(err)
			}
		}
		for _, g := range checked {
			rows, err := br.Query()
			if err != nil {
				rows.Close()
				return fail(err)
			}
			if _, err := g.mark(0, g.ops, rows, true); err != nil {
				return fail(err)
			}
		}
		if one {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				_ = pc.Close(ctx) // whether it committed is unknown; the connection is not reused
				return fmt.Errorf("commit: %w", err)
			}
			if err := br.Close(); err != nil {
				_ = pc.Close(ctx)
				return fmt.Errorf("commit: %w", err)
			}
			return committed(tag)
		}
		if err := br.Close(); err != nil {
			return rollback(err)
		}
		for _, g := range after { // a round trip per statement, after the pipeline: see group.run
			for range g.ms {
				c.trip()
			}
			if err := g.run(ctx, pc); err != nil {
				return rollback(err)
			}
		}
		c.trip()
		tag, err := pc.Exec(ctx, "COMMIT")
		if err != nil {
			_ = pc.Close(ctx) // whether it committed is unknown; the connection is not reused
			return fmt.Errorf("commit: %w", err)
		}
		return committed(tag)
	})
}

// byIndexSettings are the settings of a pipeline's byIndex statements (merger.byIndex), for the
// rest of the transaction: one statement, one answer read.
const byIndexSettings = "SELECT set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)"

// oneTrip reports whether a batch's COMMIT may go into its pipeline: no write needs a rollback
// that the pipeline's answers would ask for. A write whose statement must change a row and did
// not (doMatch) fails alone without one when that statement is its only one (it changed
// nothing: the package's checked statements are UPDATEs, DELETEs and INSERT ... SELECTs, whose
// zero rows affected mean they wrote nothing, and touchOwnedQueries writes an owner row only for
// a row its touch changed); a write of several statements needs one, and so does a merged group of several
// statements that checks rows (its later statements wait for the first's answer: after).
func oneTrip(alone []*write, after []*group) bool {
	if len(after) > 0 {
		return false
	}
	for _, op := range alone {
		if op.noMatch != nil && len(op.stmts) > 1 {
			return false
		}
	}
	return true
}

// scanInto reads the one row rows holds into into's text columns and closes rows.
func scanInto(rows pgx.Rows, into []*string) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("statement returned no row")
	}
	dest := make([]any, len(into))
	for i, p := range into {
		dest[i] = p
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	if rows.Next() {
		return errors.New("statement returned more than one row")
	}
	rows.Close()
	return rows.Err()
}

// committed checks COMMIT's answer: an aborted transaction ends in ROLLBACK.
func committed(tag pgconn.CommandTag) error {
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: server answered %s", tag)
	}
	return nil
}

// trip counts a round trip to PostgreSQL, for tests (writer.roundTrips). A pgx statement cache
// miss (a connection's first use of a statement) adds one that is not counted.
func (c *committer) trip() {
	if c.trips != nil {
		c.trips.Add(1)
	}
}
