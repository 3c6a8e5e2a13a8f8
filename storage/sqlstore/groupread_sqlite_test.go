package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
)

// On SQLite the NoSec credential checks that wait while a statement runs share the next one:
// with the reader held in its first statement, n-k more checks queue, and one statement answers
// them all (each with its own answer).
func TestSQLiteCredentialChecksShareStatements(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := s.credExists
	if g == nil {
		t.Fatal("SQLite answers HasCredential by point reads: no group read")
	}
	const n = 64
	ep := func(i int) string { return fmt.Sprintf("ep-%02d", i) }
	for i := 0; i < n; i += 2 {
		c := testSealed(ep(i))
		if err := s.SaveCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the reader in its first statement, and learn the statements' sizes.
	sizes := make(chan int, n)
	release := make(chan struct{})
	fetch := g.fetch
	var once sync.Once
	g.fetch = func(keys []string) (map[string]struct{}, error) {
		sizes <- len(keys)
		once.Do(func() { <-release })
		return fetch(keys)
	}
	before := g.stmts()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if has, err := s.HasCredential(ctx, ep(i)); err != nil || has != (i%2 == 0) {
				t.Errorf("HasCredential(%s) = %v, %v; want %v", ep(i), has, err, i%2 == 0)
			}
		})
	}
	first := <-sizes
	deadline := time.Now().Add(time.Minute)
	for len(g.queue) < n-first {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d checks queued behind the first statement (%d keys)", len(g.queue), n-first, first)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if second := <-sizes; second != n-first {
		t.Errorf("second statement: %d keys, want the %d that waited", second, n-first)
	}
	if got := g.stmts() - before; got != 2 {
		t.Errorf("%d statements for %d checks, want 2", got, n)
	}
}

// The batch's statement finds each key through the primary key's index, not by scanning the
// table (a fleet's worth of rows per batch).
func TestSQLiteCredentialCheckPlan(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.credExists == nil {
		t.Fatal("SQLite answers HasCredential by point reads: no group read")
	}
	rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.credExists.query, `["a","b"]`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(plan, "; ")
	t.Logf("plan: %s", all)
	if !strings.Contains(all, "device_credentials USING") || !strings.Contains(all, "INDEX") ||
		strings.Contains(all, "SCAN device_credentials") {
		t.Errorf("plan %q: want device_credentials searched by its index", all)
	}
}

func testSealed(endpoint string) *credentials.Sealed {
	return &credentials.Sealed{Endpoint: endpoint, Identity: "id-" + endpoint, Nonce: make([]byte, 12),
		SealedKey: []byte("sealed"), KeyID: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
}
