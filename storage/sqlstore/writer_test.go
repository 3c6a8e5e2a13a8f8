package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
)

// TestBatchFailureIsolated checks that one failing write in a batch fails alone: the batch is
// retried write by write and the others commit. On PostgreSQL it runs the pipelined commit,
// where the failing statement aborts the pipeline's transaction; and a write whose noMatch
// statement changes no row fails alone the same way.
func TestBatchFailureIsolated(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mk := func(ctx context.Context, query string, args ...any) *write {
				return &write{ctx: ctx, stmts: []stmt{{s.dialect.rebind(query), args}}, done: make(chan error, 1)}
			}
			ins := "INSERT INTO observations (endpoint, path, token, format, created_at) VALUES (?, ?, ?, 0, NULL)"
			gone, cancel := context.WithCancel(ctx)
			cancel()
			noMatch := errors.New("no row")
			unmatched := mk(ctx, "DELETE FROM observations WHERE endpoint = ?", "nobody")
			unmatched.noMatch = noMatch
			batch := []*write{
				mk(ctx, ins, "a", "/1", []byte{1}),
				mk(ctx, "INSERT INTO no_such_table VALUES (1)"),
				mk(gone, ins, "c", "/1", []byte{1}),
				unmatched,
				mk(ctx, ins, "b", "/1", []byte{1}),
			}
			c := newCommitter(s.writeDB, []string{s.dialect.rebind(ins)})
			c.unbounded, c.pipelined = s.dialect.unboundedTx, s.dialect.pipelined
			defer c.close()
			c.commit(batch)
			want := []error{nil, errors.New("any"), context.Canceled, noMatch, nil}
			for i, op := range batch {
				select {
				case err := <-op.done:
					switch {
					case want[i] == nil && err != nil:
						t.Errorf("write %d: %v, want success", i, err)
					case (want[i] == context.Canceled || want[i] == noMatch) && !errors.Is(err, want[i]):
						t.Errorf("write %d: %v, want %v", i, err, want[i])
					case want[i] != nil && err == nil:
						t.Errorf("write %d succeeded, want an error", i)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("write %d: no answer", i)
				}
			}
			obs, err := s.Observations(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(obs) != 2 || obs[0].Endpoint != "a" || obs[1].Endpoint != "b" {
				t.Errorf("observations after the batch = %d rows, want a and b", len(obs))
			}
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		prefix, end string
		ok          bool
	}{
		{"dev-a", "dev-b", true},
		{"a\u00e4", "a\u00e5", true},
		{"x\U0010FFFF", "y", true},
		{"\U0010FFFF", "", false},
		{"\ud7ff", "\ue000", true},
		{"a\xff", "b", true}, // not UTF-8: bytewise
	}
	for _, tc := range tests {
		end, ok := prefixEnd(tc.prefix)
		if end != tc.end || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tc.prefix, end, ok, tc.end, tc.ok)
		}
	}
}

// TestWriteReuse checks that a write's struct and channel, reused once its caller got its
// answer (writer.newWrite), never carry one caller's write or answer to another: many callers
// touch at once, some with a stale id (ErrNotFound), some giving up at once or at once after
// queueing (whose writes the writer may still hold, and which are not reused); every caller
// that did not give up gets its own answer. Under -race a write reused while the writer still
// read it would also show as a race.
func TestWriteReuse(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			s, err := Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const devices, callers, rounds = 64, 32, 40
			base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			ep := func(i int) string { return fmt.Sprintf("dev-%02d", i) }
			for i := range devices {
				r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Version: "1.1", Lifetime: 60, Binding: "U",
					RegisteredAt: base, UpdatedAt: base, LastSeen: base}
				if err := s.SaveRegistration(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					for n := range rounds {
						i := (c*rounds + n) % devices
						r := &registration.Registration{ID: "id-" + ep(i), Endpoint: ep(i), Lifetime: 60,
							UpdatedAt: base.Add(time.Duration(n+1) * time.Second), LastSeen: base.Add(time.Duration(n+1) * time.Second)}
						stale := (c+n)%3 == 0
						if stale {
							r.ID = "stale"
						}
						callCtx := ctx
						leaves := (c+n)%5 == 0
						if leaves {
							var leave context.CancelFunc
							callCtx, leave = context.WithCancel(ctx)
							if n%2 == 0 {
								leave() // before it is queued
							} else {
								go leave() // while it is queued or committing
							}
						}
						err := s.TouchRegistration(callCtx, r)
						switch {
						case leaves && errors.Is(err, context.Canceled):
						case stale && !errors.Is(err, registration.ErrNotFound):
							t.Errorf("caller %d round %d: stale touch of %s = %v, want ErrNotFound", c, n, r.Endpoint, err)
						case !stale && err != nil:
							t.Errorf("caller %d round %d: touch of %s = %v, want success", c, n, r.Endpoint, err)
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
