package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
)

// mergeable merges a write only when each of its statements has a merger, its key is alone in
// the batch and its args fit arrays; writes with the same statements form a group, and a group
// of one runs as the plain statements.
func TestMergeable(t *testing.T) {
	m, owner := &merger{query: "merged"}, &merger{query: "owners", key: -1}
	mergers := map[string]*merger{"touch": m, "owner": owner}
	w := func(key string, queries ...string) *write {
		op := &write{key: key}
		for _, q := range queries {
			op.stmts = append(op.stmts, stmt{q, []any{"a", int64(1), sql.NullInt64{}, true}})
		}
		return op
	}
	odd := w("odd", "touch")
	odd.stmts[0].args = []any{struct{}{}}
	for _, tc := range []struct {
		name        string
		ops         []*write
		alone, took []string // keys, in order
	}{
		{"merged", []*write{w("a", "touch"), w("b", "touch"), w("c", "save")}, []string{"c"}, []string{"a", "b"}},
		{"a group of one runs alone", []*write{w("a", "touch"), w("c", "save")}, []string{"c", "a"}, nil},
		{"a key twice keeps its order", []*write{w("a", "touch"), w("b", "touch"), w("a", "save"), w("d", "touch")},
			[]string{"a", "a"}, []string{"b", "d"}},
		{"two statements", []*write{w("a", "touch", "touch"), w("b", "touch"), w("c", "touch")}, []string{"a"}, []string{"b", "c"}},
		{"groups by statements", []*write{w("a", "owner", "touch"), w("b", "touch"), w("c", "owner", "touch"), w("d", "touch")},
			nil, []string{"a", "c", "b", "d"}},
		{"more statements than maxMerged", []*write{w("a", "touch", "touch", "touch", "touch", "touch"), w("b", "touch", "touch", "touch", "touch", "touch")},
			[]string{"a", "b"}, nil},
		{"a statement without merger", []*write{w("a", "owner", "save"), w("b", "owner", "save")}, []string{"a", "b"}, nil},
		{"args that are no column", []*write{odd, w("b", "touch"), w("c", "touch")}, []string{"odd"}, []string{"b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alone, groups := mergeable(tc.ops, mergers)
			var gotAlone, gotTook []string
			for _, op := range alone {
				gotAlone = append(gotAlone, op.key)
			}
			for _, g := range groups {
				for i, gm := range g.ms {
					if want := mergers[g.ops[0].stmts[i].query]; gm != want {
						t.Fatalf("group's statement %d has merger %v, want %v", i, gm, want)
					}
				}
				for _, op := range g.ops {
					gotTook = append(gotTook, op.key)
				}
			}
			if !slices.Equal(gotAlone, tc.alone) || !slices.Equal(gotTook, tc.took) {
				t.Errorf("alone %v, merged %v; want %v, %v", gotAlone, gotTook, tc.alone, tc.took)
			}
		})
	}
}

// The touches of a PostgreSQL batch run as one UPDATE: each device's row gets its own times
// and address, and a touch of an id that is not the stored one fails alone with
// registration.ErrNotFound while the others of its batch commit. On SQLite (no merging) the
// same holds.
func TestMergedTouches(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const n = 400
			base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			ep := func(i int) string { return fmt.Sprintf("dev-%03d", i) }
			for i := range n {
				r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Version: "1.1", Lifetime: 60, Binding: "U",
					RegisteredAt: base, UpdatedAt: base, LastSeen: base}
				if err := s.SaveRegistration(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			// Many touches at once, so that batches hold many; every seventh names a wrong id.
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Lifetime: 60,
						UpdatedAt: base.Add(time.Duration(i+1) * time.Second), LastSeen: base.Add(time.Duration(i+1) * time.Second)}
					if i%7 == 0 {
						r.ID = "stale"
					}
					errs[i] = s.TouchRegistration(ctx, r)
				})
			}
			wg.Wait()
			for i := range n {
				got, err := s.GetRegistration(ctx, ep(i))
				if err != nil {
					t.Fatal(err)
				}
				want := base.Add(time.Duration(i+1) * time.Second)
				if i%7 == 0 {
					want = base
					if !errors.Is(errs[i], registration.ErrNotFound) {
						t.Errorf("touch of %s with a stale id = %v, want ErrNotFound", ep(i), errs[i])
					}
				} else if errs[i] != nil {
					t.Errorf("touch of %s = %v", ep(i), errs[i])
				}
				if !got.UpdatedAt.Equal(want) || !got.LastSeen.Equal(want) || !got.ExpiresAt().Equal(want.Add(time.Minute)) {
					t.Errorf("%s after the touches: updated %v, seen %v; want %v", ep(i), got.UpdatedAt, got.LastSeen, want)
				}
			}
		})
	}
}
