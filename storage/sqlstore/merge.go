package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// merger runs the like statements of many writes of a PostgreSQL batch as one statement over
// arrays: the touches of a batch of registration Updates become one UPDATE ... FROM unnest(...)
// instead of one UPDATE each, the saves of a batch of Registers one INSERT ... SELECT FROM
// unnest(...) ON CONFLICT, so PostgreSQL parses, binds, plans and starts one statement per batch
// rather than per device (per-statement work was the largest part of the database's CPU per
// registration). Each arg of a merged statement is one column, passed as an array of that
// column over the writes. A merger with a key returns the key of every row it changed
// (RETURNING): a write whose row it did not find fails alone with its noMatch error, having
// changed nothing, and the rest of the batch commits without a rollback.
type merger struct {
	// query takes one array parameter per column, in the order of the statement's args, and,
	// when key >= 0, returns the key column of each row it changed.
	query string
	// key is the index among the args of the value the query returns for a changed row; -1 when
	// the query returns nothing: it writes a row for every write (an upsert, an insert that may
	// do nothing). A group whose mergers all return nothing goes into the batch's pipeline (see
	// pipelined); the others run after it.
	key int
	// byIndex: the statement joins its table to the arrays' rows by key (UPDATE ... FROM
	// unnest), written so that its one plan without a sequential scan looks each row up in the
	// table's index (keyJoin, noCredentialByIndex). In the batch's pipeline it runs with pgx's
	// cached statement under enable_seqscan = off and plan_cache_mode = force_generic_plan for
	// the transaction (byIndexSettings): one generic plan per connection, no planning per
	// batch, and a plan that scans the table (made while it was small, or a hash join chosen
	// for a batch of 200 on a table of 10,000) can be neither cached nor chosen.
	// After the pipeline (group.run) it is planned for its batch's arrays (QueryExecModeExec).
	// An insert from unnest has no such choice to get wrong, and planning it per batch cost more
	// PostgreSQL CPU than the rows' writes (BenchmarkOwnedRegistrationParallel/save: 126 µs of
	// PostgreSQL CPU per Register planned per batch, 42-46 µs cached).
	byIndex bool
	// ret is how many text columns the query returns for each row it wrote, after the key
	// (args[retKey]) that tells whose row it is: they go to the write's into, as the plain
	// statement's RETURNING would (SaveRegistrationKeepingInfo), so it must be the first
	// statement of its writes. 0: it returns nothing to its callers. Such a merger checks no
	// row (key -1): its group goes into the pipeline.
	ret    int
	retKey int
}

// group is the writes of one batch whose statements have the same mergers, in the same order.
type group struct {
	seq mergerSeq // its identity: ms, padded with nils
	ms  []*merger // by statement
	ops []*write
}

// pipelined reports whether g goes into its batch's pipeline: no statement returns rows to
// check, so no statement waits for another's answer.
func (g *group) pipelined() bool {
	for _, m := range g.ms {
		if m.key >= 0 {
			return false
		}
	}
	return true
}

// piped reports whether g, a group that checks rows (not pipelined), may still go into its
// batch's pipeline with the COMMIT after it (pipelineTx's one round trip): it is one checked
// statement, so no statement waits for its answer, and every write of g has a noMatch error, so
// a write whose row it did not return fails alone, having changed nothing, while the rest
// commits.
func (g *group) piped() bool {
	if len(g.ms) != 1 || g.ms[0].key < 0 {
		return false
	}
	for _, op := range g.ops {
		if op.noMatch == nil {
			return false
		}
	}
	return true
}

// queue adds g's statements to b, one merged statement each.
func (g *group) queue(b *pgx.Batch) error {
	for i, m := range g.ms {
		args, err := arrays(g.ops, i)
		if err != nil {
			return err
		}
		b.Queue(m.query, args...)
	}
	return nil
}

// mergeable splits a batch into the writes that run statement by statement, in order, and the
// groups that run merged. A write is merged when each of its statements has a merger (mergers,
// by the statement's query) and no other write of the batch has its key: writes of one key keep
// their order, and merged statements run after the others. The statements of a merged write
// must not depend on each other's order (they write different tables): a group whose writes
// check their last statement (doMatch) runs that statement first, so that a write that fails
// writes nothing.
func mergeable(ops []*write, mergers map[string]*merger) (alone []*write, groups []*group) {
	return mergeableWith(ops, mergers, make(map[string]int, len(ops)))
}

// mergeableWith is mergeable counting the keys in keys, an empty map the committer keeps from
// batch to batch (clearing it keeps its room) rather than one made per batch.
func mergeableWith(ops []*write, mergers map[string]*merger, keys map[string]int) (alone []*write, groups []*group) {
	defer clear(keys)
	for _, op := range ops {
		keys[op.key]++
	}
	for _, op := range ops {
		seq, ok := mergersOf(op, mergers)
		if !ok || keys[op.key] > 1 {
			alone = append(alone, op)
			continue
		}
		// A batch has a group or two (touches, Registers): found by a look at each, not a map.
		var g *group
		for _, h := range groups {
			if h.seq == seq {
				g = h
				break
			}
		}
		if g == nil {
			g = &group{seq: seq, ms: seq[:len(op.stmts)]}
			groups = append(groups, g)
		}
		g.ops = append(g.ops, op)
	}
	// A group of one gains nothing: it runs as the plain statements.
	for i := 0; i < len(groups); {
		if len(groups[i].ops) == 1 {
			alone = append(alone, groups[i].ops[0])
			groups = append(groups[:i], groups[i+1:]...)
			continue
		}
		i++
	}
	return alone, groups
}

// maxMerged is the most statements a merged write has (a Register: registration, owner row,
// outbox); a write with more runs alone.
const maxMerged = 4

// mergerSeq is the merger of each statement of a write, in order: a group's identity.
type mergerSeq [maxMerged]*merger

// mergersOf returns the merger of each of op's statements, or false when a statement has none
// or args that are no column, or op has no statement or more than maxMerged.
func mergersOf(op *write, mergers map[string]*merger) (mergerSeq, bool) {
	var seq mergerSeq
	if len(op.stmts) == 0 || len(op.stmts) > maxMerged {
		return seq, false
	}
	for i, s := range op.stmts {
		m := mergers[s.query]
		if m == nil || !columnar(s.args) {
			return seq, false
		}
		seq[i] = m
	}
	return seq, true
}

// columnar reports whether every arg has a type arrays() can put in a column.
func columnar(args []any) bool {
	for _, a := range args {
		switch a.(type) {
		case string, int64, bool, sql.NullInt64:
		default:
			return false
		}
	}
	return true
}

// arrays returns one array per column of statement i of ops, encoded for PostgreSQL
// (encodeColumn): text for string, bigint for int64 and sql.NullInt64 (nil is NULL), boolean
// for bool. Every write of a group has the same statement, so the same column types; a
// mismatch is an error, and the batch is retried write by write.
func arrays(ops []*write, i int) ([]any, error) {
	out := make([]any, len(ops[0].stmts[i].args))
	for col := range out {
		a, err := encodeColumn(ops, i, col)
		if err != nil {
			return nil, err
		}
		out[col] = a
	}
	return out, nil
}

// fill reads what merged statement i returned for each write of g (rows, which it closes: the
// key, then the merger's ret text columns) into the write's into. Every write must get its
// row: the statement writes one for each.
func (g *group) fill(i int, rows pgx.Rows) error {
	defer rows.Close()
	m := g.ms[i]
	byKey := make(map[string]*write, len(g.ops))
	for _, op := range g.ops {
		key, _ := op.stmts[i].args[m.retKey].(string)
		byKey[key] = op
	}
	var key string
	dest := make([]any, 1+m.ret)
	dest[0] = &key
	filled := 0
	for rows.Next() {
		vals := make([]string, m.ret)
		for j := range vals {
			dest[1+j] = &vals[j]
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		op, ok := byKey[key]
		if !ok || i != 0 || len(op.into) != m.ret {
			return fmt.Errorf("merged write returned a row of %s, which it has no place for", key)
		}
		for j, p := range op.into {
			*p = vals[j]
		}
		delete(byKey, key)
		filled++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if filled != len(g.ops) {
		return fmt.Errorf("merged write returned %d rows for %d writes", filled, len(g.ops))
	}
	return nil
}

// run runs the group's merged statements on pc, inside the batch's transaction, and fails
// (op.failed) each write whose checked row a statement did not return with its noMatch error;
// the statements after it skip that write. A checked last statement runs first (see
// mergeable). Each runs apart from the batch's pipeline, a round trip each: the statements
// after a checked one need its answer, and a byIndex statement takes QueryExecModeExec, which
// a pgx.Batch cannot take per statement.
func (g *group) run(ctx context.Context, pc *pgx.Conn) error {
	order := make([]int, len(g.ms))
	for i := range order {
		order[i] = i
	}
	last := len(order) - 1
	if last > 0 && slices.ContainsFunc(g.ops, func(op *write) bool { return op.noMatch != nil }) {
		order = append([]int{last}, order[:last]...)
	}
	live := g.ops
	for _, i := range order {
		if len(live) == 0 {
			return nil
		}
		var err error
		if live, err = g.runStmt(ctx, pc, i, live, i == last); err != nil {
			return err
		}
	}
	return nil
}

// runStmt runs merged statement i over live and returns the writes it did not fail.
func (g *group) runStmt(ctx context.Context, pc *pgx.Conn, i int, live []*write, checked bool) ([]*write, error) {
	m := g.ms[i]
	args, err := arrays(live, i)
	if err != nil {
		return nil, err
	}
	if m.byIndex {
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	if m.key < 0 {
		_, err := pc.Exec(ctx, m.query, args...)
		return live, err
	}
	rows, err := pc.Query(ctx, m.query, args...)
	if err != nil {
		return nil, err
	}
	return g.mark(i, live, rows, checked)
}

// mark reads the keys statement i returned (rows, which it closes) and returns the writes of
// live whose key is among them. A write whose key is not fails with its noMatch error when the
// statement is the write's checked one (op.failed); otherwise mark returns an error. The keys
// are looked up as the rows' raw bytes, among the writes' own: no string per row.
func (g *group) mark(i int, live []*write, rows pgx.Rows, checked bool) ([]*write, error) {
	m := g.ms[i]
	at := make(map[string]int, len(live)) // key: its write's index in live
	for j, op := range live {
		key, _ := op.stmts[i].args[m.key].(string)
		at[key] = j
	}
	changed := make([]bool, len(live))
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != 1 || raw[0] == nil {
			rows.Close()
			return nil, fmt.Errorf("merged statement returned %d columns, want one key", len(raw))
		}
		if j, ok := at[string(raw[0])]; ok { // text's binary and text formats are its bytes
			changed[j] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	kept := make([]*write, 0, len(live))
	for j, op := range live {
		if changed[j] {
			kept = append(kept, op)
			continue
		}
		if op.noMatch == nil || !checked {
			key, _ := op.stmts[i].args[m.key].(string)
			return nil, fmt.Errorf("merged write of %s changed no row", key)
		}
		op.failed = op.noMatch
	}
	return kept, nil
}
