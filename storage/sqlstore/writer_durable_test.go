package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestAnsweredAfterCommit: a write is answered only after its batch's COMMIT returned, nothing
// acknowledged before it is stored. Writers update rows of their own, several rounds each, and
// read their row from another connection the moment a write is answered: a write answered
// before its commit would not be visible yet. On PostgreSQL a deferred trigger makes the
// COMMIT of every batch holding k0 or k1 sleep, so an answer sent after the statements but
// before the COMMIT returned is caught every time, not only when the reader is quick.
func TestAnsweredAfterCommit(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, err := Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const devices, rounds = 100, 5
			setup := []string{
				"CREATE TABLE answered_test (k TEXT PRIMARY KEY, v INT NOT NULL)",
				"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99) " +
					"INSERT INTO answered_test SELECT 'k' || i, 0 FROM n",
			}
			if be.name == "postgres" {
				setup = append(setup,
					"CREATE FUNCTION answered_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$",
					"CREATE CONSTRAINT TRIGGER answered_slow AFTER UPDATE ON answered_test DEFERRABLE INITIALLY DEFERRED "+
						"FOR EACH ROW WHEN (NEW.k = 'k0' OR NEW.k = 'k1') EXECUTE FUNCTION answered_slow()")
			}
			for _, q := range setup {
				if _, err := s.writeDB.ExecContext(ctx, q); err != nil { // SQLite's read pool is query_only
					t.Fatal(err)
				}
			}
			update := s.dialect.rebind("UPDATE answered_test SET v = ? WHERE k = ?")
			read := s.dialect.rebind("SELECT v FROM answered_test WHERE k = ?")
			var wg sync.WaitGroup
			errs := make(chan error, devices)
			for i := range devices {
				k := fmt.Sprintf("k%d", i)
				wg.Go(func() {
					for r := 1; r <= rounds; r++ {
						if err := s.w.do(ctx, k, stmt{update, []any{r, k}}); err != nil {
							errs <- fmt.Errorf("%s round %d: %w", k, r, err)
							return
						}
						var v int
						if err := s.db.QueryRowContext(ctx, read, k).Scan(&v); err != nil {
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
		})
	}
}
