package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// merger runs the like statements of many writes of a PostgreSQL batch as one statement over
// arrays: the touches of a batch of registration Updates become one UPDATE ... FROM unnest(...)
// instead of one UPDATE each, so PostgreSQL parses, binds, plans and starts one statement per
// batch rather than per device (the touch was the largest part of the database's CPU per
// Update). A merged statement is a write's only statement; each of its args is one column,
// passed as an array of that column over the writes. The statement returns the key of every
// row it changed (RETURNING): a write whose row it did not find fails alone with its noMatch
// error, having changed nothing, and the rest of the batch commits without a rollback.
type merger struct {
	// query takes one array parameter per column, in the order of the statement's args, and
	// returns the key column of each row it changed.
	query string
	// key is the index among the args of the value the query returns for a changed row.
	key int
}

// group is the writes of one batch that share a merger.
type group struct {
	m   *merger
	ops []*write
}

// mergeable splits a batch into the writes that run statement by statement, in order, and the
// groups that run merged. A write is merged when its only statement has a merger (mergers, by
// the statement's query) and no other
// write of the batch has its key: writes of one key keep their order, and a merged statement
// runs after the others.
func mergeable(ops []*write, mergers map[string]*merger) (alone []*write, groups []*group) {
	keys := make(map[string]int, len(ops))
	for _, op := range ops {
		keys[op.key]++
	}
	byMerger := map[*merger]*group{}
	for _, op := range ops {
		var m *merger
		if len(op.stmts) == 1 {
			m = mergers[op.stmts[0].query]
		}
		if m == nil || keys[op.key] > 1 || !columnar(op.stmts[0].args) {
			alone = append(alone, op)
			continue
		}
		g := byMerger[m]
		if g == nil {
			g = &group{m: m}
			byMerger[m] = g
			groups = append(groups, g)
		}
		g.ops = append(g.ops, op)
	}
	// A group of one gains nothing: it runs as the plain statement.
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

// arrays returns one array per column: []string, []int64, []bool, or []*int64 for
// sql.NullInt64 (nil is NULL). Every write of a group has the same statement, so the same
// column types; a mismatch makes the array []any, which pgx refuses and the batch is retried
// write by write.
func (g *group) arrays() []any {
	first := g.ops[0].stmts[0].args
	out := make([]any, len(first))
	for col, v := range first {
		switch v.(type) {
		case string:
			a := make([]string, 0, len(g.ops))
			for _, op := range g.ops {
				s, _ := op.stmts[0].args[col].(string)
				a = append(a, s)
			}
			out[col] = a
		case int64:
			a := make([]int64, 0, len(g.ops))
			for _, op := range g.ops {
				n, _ := op.stmts[0].args[col].(int64)
				a = append(a, n)
			}
			out[col] = a
		case bool:
			a := make([]bool, 0, len(g.ops))
			for _, op := range g.ops {
				b, _ := op.stmts[0].args[col].(bool)
				a = append(a, b)
			}
			out[col] = a
		case sql.NullInt64:
			a := make([]*int64, 0, len(g.ops))
			for _, op := range g.ops {
				if n, _ := op.stmts[0].args[col].(sql.NullInt64); n.Valid {
					a = append(a, &n.Int64)
				} else {
					a = append(a, nil)
				}
			}
			out[col] = a
		}
	}
	return out
}

// run runs the merged statement on pc, inside the batch's transaction, and fails (op.failed)
// each write whose row it did not return with its noMatch error. It runs apart from the
// batch's pipeline, planned for these arrays and the table as it is (QueryExecModeExec, which
// a pgx.Batch cannot take per statement): a plan cached while the table was small would join
// by scanning the whole table once it holds the fleet.
func (g *group) run(ctx context.Context, pc *pgx.Conn) error {
	rows, err := pc.Query(ctx, g.m.query, append([]any{pgx.QueryExecModeExec}, g.arrays()...)...)
	if err != nil {
		return err
	}
	changed := make(map[string]struct{}, len(g.ops))
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		changed[k] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, op := range g.ops {
		key, _ := op.stmts[0].args[g.m.key].(string)
		if _, ok := changed[key]; ok {
			continue
		}
		if op.noMatch == nil {
			return fmt.Errorf("merged write of %s changed no row", key)
		}
		op.failed = op.noMatch
	}
	return nil
}
