package sqlstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestMatchFailsAlone checks doMatch's row check inside a batch: the write whose delete matches
// nothing rolls back with its own error (its first statement included), the others commit.
func TestMatchFailsAlone(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ins := "INSERT INTO observations (endpoint, path, token, format, created_at) VALUES (?, ?, ?, 0, NULL)"
	del := "DELETE FROM observations WHERE endpoint = ? AND path = ?"
	noRow := errors.New("no such row")
	for _, ep := range []string{"a", "b"} {
		if err := s.w.do(ctx, ep, stmt{ins, []any{ep, "/1", []byte{1}}}); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(noMatch error, stmts ...stmt) *write {
		return &write{ctx: ctx, stmts: stmts, done: make(chan error, 1), noMatch: noMatch}
	}
	batch := []*write{
		mk(noRow, stmt{del, []any{"a", "/1"}}),                                         // matches: commits
		mk(noRow, stmt{ins, []any{"c", "/1", []byte{1}}}, stmt{del, []any{"x", "/1"}}), // matches nothing: c rolls back
		mk(nil, stmt{del, []any{"y", "/1"}}),                                           // no check: a no-op that succeeds
	}
	c := newCommitter(s.writeDB, nil)
	defer c.close()
	c.commit(batch)
	want := []error{nil, noRow, nil}
	for i, op := range batch {
		select {
		case err := <-op.done:
			if err != want[i] {
				t.Errorf("write %d: err = %v, want %v", i, err, want[i])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("write %d: no answer", i)
		}
	}
	obs, err := s.Observations(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].Endpoint != "b" {
		t.Errorf("observations after the batch = %d rows, want only b", len(obs))
	}
	// Through the queue too.
	if err := s.w.doMatch(ctx, "b", noRow, stmt{del, []any{"b", "/2"}}); err != noRow {
		t.Errorf("doMatch of a missing row: err = %v, want %v", err, noRow)
	}
}
