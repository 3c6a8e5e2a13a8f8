package sqlstore

import (
	"context"
	"database/sql"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lwota/lwota/storage/pgtest"
)

// encodeColumn's arrays reach PostgreSQL as the same values pgx's own array codec sends for the
// typed slices arrays used to pass (NULLs, negative and extreme numbers, empty and non-ASCII
// text, a single element), and an array whose element type is not the parameter's is refused
// before it is sent.
func TestEncodedArrays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	useEncodedArrays(conn.TypeMap())
	useEncodedArrays(conn.TypeMap()) // a second call, as every batch makes, changes nothing

	col := func(vals ...any) []*write {
		ops := make([]*write, len(vals))
		for i, v := range vals {
			ops[i] = &write{key: "k", stmts: []stmt{{args: []any{v}}}}
		}
		return ops
	}
	n := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		cast string
		ops  []*write
		want any // what pgx's own codec sends
	}{
		{"text", "text[]", col("urn:imei:1", "", "ünïcödé 🛰", `a"b\c,{}`), []string{"urn:imei:1", "", "ünïcödé 🛰", `a"b\c,{}`}},
		{"text one", "text[]", col("only"), []string{"only"}},
		{"bigint", "bigint[]", col(int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64)), []int64{0, -1, math.MaxInt64, math.MinInt64}},
		{"nullable bigint", "bigint[]",
			col(sql.NullInt64{Int64: 7, Valid: true}, sql.NullInt64{}, sql.NullInt64{Int64: -7, Valid: true}),
			[]*int64{n(7), nil, n(-7)}},
		{"nullable bigint without NULL", "bigint[]",
			col(sql.NullInt64{Int64: 1, Valid: true}, sql.NullInt64{Int64: 2, Valid: true}), []*int64{n(1), n(2)}},
		{"boolean", "boolean[]", col(true, false, true), []bool{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := encodeColumn(tc.ops, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			q := "SELECT $1::" + tc.cast + "::text, cardinality($1::" + tc.cast + ")"
			var got, want string
			var gotN, wantN int
			if err := conn.QueryRow(ctx, q, enc).Scan(&got, &gotN); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRow(ctx, q, tc.want).Scan(&want, &wantN); err != nil {
				t.Fatal(err)
			}
			if got != want || gotN != wantN || gotN != len(tc.ops) {
				t.Errorf("encoded array reads %s (%d elements), pgx's %v reads %s (%d)", got, gotN, tc.want, want, wantN)
			}
		})
	}

	t.Run("element type mismatch", func(t *testing.T) {
		enc, err := encodeColumn(col(int64(1), int64(2)), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		err = conn.QueryRow(ctx, "SELECT $1::text[]::text", enc).Scan(&s)
		if err == nil || !strings.Contains(err.Error(), "element type") {
			t.Errorf("bigint elements for a text[] parameter: %q, %v; want an encoding error", s, err)
		}
	})
	t.Run("mixed column", func(t *testing.T) {
		if _, err := encodeColumn(col("a", int64(1)), 0, 0); err == nil {
			t.Error("a column of a string and an int64 encoded without an error")
		}
		if _, err := encodeColumn(col(1.5, 2.5), 0, 0); err == nil {
			t.Error("a column of float64 encoded without an error")
		}
	})
	t.Run("other values", func(t *testing.T) { // the wrapped codec still encodes pgx's own
		var s string
		if err := conn.QueryRow(ctx, "SELECT $1::bigint[]::text", []int64{1, 2}).Scan(&s); err != nil || s != "{1,2}" {
			t.Errorf("[]int64 through the wrapped codec: %q, %v", s, err)
		}
		var back []string
		if err := conn.QueryRow(ctx, "SELECT ARRAY['x', 'y']::text[]").Scan(&back); err != nil || strings.Join(back, ",") != "x,y" {
			t.Errorf("text[] scanned through the wrapped codec: %v, %v", back, err)
		}
	})
}
