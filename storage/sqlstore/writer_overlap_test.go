package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/pgtest"
)

// overlapTable makes a table of its own for the writer tests below, with rows k0 to k<n-1>
// holding 0.
func overlapTable(t *testing.T, ctx context.Context, db *sql.DB, n int) {
	t.Helper()
	if _, err := db.ExecContext(ctx, "CREATE TABLE overlap_test (k TEXT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO overlap_test SELECT 'k' || i, 0 FROM generate_series(0, $1 - 1) i", n); err != nil {
		t.Fatal(err)
	}
}

// blockRow locks row k of overlap_test in a transaction of its own until the returned func
// ends it, and returns once the lock is held.
func blockRow(t *testing.T, ctx context.Context, db *sql.DB, k string) (unblock func()) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 1 FROM overlap_test WHERE k = $1 FOR UPDATE", k); err != nil {
		t.Fatal(err)
	}
	return sync.OnceFunc(func() { _ = tx.Rollback() })
}

// waitForLockWaits waits until n backends wait for a lock (a write's statement blocked on the
// row blockRow holds).
func waitForLockWaits(t *testing.T, ctx context.Context, db *sql.DB, n int) {
	t.Helper()
	for {
		var waiting int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d backends waiting for a lock, want %d: %v", waiting, n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// overlapWriter is a writer over s's PostgreSQL pool with its dialect, but starting a batch of
// any size beside one in flight (overlapMin 1), so that a test's single writes overlap.
func overlapWriter(s *Store) *writer {
	d := *s.dialect
	d.overlapMin = 1
	return newWriter(s.writeDB, nil, nil, &d)
}

// TestOverlappedBatches: on PostgreSQL a batch is executed while another waits for its COMMIT,
// so a write queued while a batch is stuck (its statement waits for a row lock held elsewhere)
// commits and is answered before it. With one batch at a time it would wait for the stuck one.
func TestOverlappedBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	overlapTable(t, ctx, s.db, 2)
	w := overlapWriter(s)
	defer w.close()
	unblock := blockRow(t, ctx, s.db, "k0")
	defer unblock()
	stuck := make(chan error, 1)
	go func() { stuck <- w.do(ctx, "k0", stmt{"UPDATE overlap_test SET v = 1 WHERE k = 'k0'", nil}) }()
	waitForLockWaits(t, ctx, s.db, 1)
	if err := w.do(ctx, "k1", stmt{"UPDATE overlap_test SET v = 1 WHERE k = 'k1'", nil}); err != nil {
		t.Fatalf("write beside the stuck batch: %v", err)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the stuck write was answered (%v) while its row was locked", err)
	default:
	}
	if n := w.overlapped.Load(); n != 1 {
		t.Errorf("%d batches started beside one in flight, want 1", n)
	}
	unblock()
	if err := <-stuck; err != nil {
		t.Fatalf("stuck write: %v", err)
	}
}

// TestOverlappedBatchesKeepKeyOrder: a write of a key that a batch in flight holds waits for
// that batch to be answered, so the writes of one key commit in the order they were made even
// when the earlier one's statements have not all run yet. Here the first write of k1 is stuck
// on another row before it sets k1 to 1; the second, queued after it, sets k1 to 2 and must
// come last. Run beside the stuck batch, it would set 2 first and be overwritten.
func TestOverlappedBatchesKeepKeyOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	overlapTable(t, ctx, s.db, 2)
	w := overlapWriter(s)
	defer w.close()
	unblock := blockRow(t, ctx, s.db, "k0")
	defer unblock()
	first := make(chan error, 1)
	go func() {
		first <- w.do(ctx, "k1", stmt{"UPDATE overlap_test SET v = 1 WHERE k = 'k0'", nil},
			stmt{"UPDATE overlap_test SET v = 1 WHERE k = 'k1'", nil})
	}()
	waitForLockWaits(t, ctx, s.db, 1)
	second := make(chan error, 1)
	go func() { second <- w.do(ctx, "k1", stmt{"UPDATE overlap_test SET v = 2 WHERE k = 'k1'", nil}) }()
	// Either the writer holds the second write back (right), or it ran and was answered (wrong:
	// the final value below tells).
	answered := false
	for !answered && w.held.Load() == 0 {
		select {
		case err := <-second:
			answered = true
			second <- err
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	unblock()
	for name, ch := range map[string]chan error{"first": first, "second": second} {
		if err := <-ch; err != nil {
			t.Fatalf("%s write: %v", name, err)
		}
	}
	var v int
	if err := s.db.QueryRowContext(ctx, "SELECT v FROM overlap_test WHERE k = 'k1'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 2 {
		t.Errorf("k1 = %d after writes setting 1 then 2, want 2", v)
	}
}

// TestAnsweredAfterCommit: every write is answered only after its own batch's COMMIT returned,
// with batches overlapping. Each COMMIT is made slow (a deferred trigger sleeps in it), and each
// writer reads its row from another connection the moment it is answered: a write answered
// before its COMMIT returned would not be visible yet.
func TestAnsweredAfterCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const devices, rounds = 200, 5
	overlapTable(t, ctx, s.db, devices)
	for _, q := range []string{
		"CREATE FUNCTION overlap_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$",
		"CREATE CONSTRAINT TRIGGER overlap_slow AFTER UPDATE ON overlap_test DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.k = 'k0' OR NEW.k = 'k1') EXECUTE FUNCTION overlap_slow()",
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w := overlapWriter(s)
	defer w.close()
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for i := range devices {
		k := fmt.Sprintf("k%d", i)
		wg.Go(func() {
			for r := 1; r <= rounds; r++ {
				if err := w.do(ctx, k, stmt{"UPDATE overlap_test SET v = $1 WHERE k = $2", []any{r, k}}); err != nil {
					errs <- fmt.Errorf("%s round %d: %w", k, r, err)
					return
				}
				var v int
				if err := s.db.QueryRowContext(ctx, "SELECT v FROM overlap_test WHERE k = $1", k).Scan(&v); err != nil {
					errs <- err
					return
				}
				if v != r {
					errs <- fmt.Errorf("%s answered for round %d but reads %d: answered before its commit", k, r, v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if w.overlapped.Load() == 0 {
		t.Error("no batch started beside another: the test did not overlap batches")
	}
}
