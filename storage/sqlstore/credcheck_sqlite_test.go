package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
)

func openSQLiteForTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// On SQLite the NoSec credential check has connections of its own: reads that hold every
// connection of the read pool (slow API listings, exports) do not hold up the check of every
// plain-CoAP Update and Register, and it costs no more than its statement's allocations.
func TestSQLiteCredentialCheckOwnConnections(t *testing.T) {
	ctx := context.Background()
	s := openSQLiteForTest(t)
	now := time.Now()
	if err := s.SaveCredential(ctx, &credentials.Sealed{Endpoint: "secured", Identity: "id-secured", Nonce: make([]byte, 12),
		SealedKey: []byte("sealed"), KeyID: 1, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	held := make([]*sql.Conn, 0, sqliteDialect.maxReaders)
	for range sqliteDialect.maxReaders {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// A check behind the read pool waits for a held connection (whatever its context says:
	// the point read's cannot end), so it runs aside and is given 30 seconds.
	done := make(chan error, 1)
	go func() {
		for _, tt := range []struct {
			ep  string
			has bool
		}{{"secured", true}, {"plain", false}} {
			if has, err := s.HasCredential(ctx, tt.ep); err != nil || has != tt.has {
				done <- fmt.Errorf("HasCredential(%s) = %v, %v; want %v", tt.ep, has, err, tt.has)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Error("HasCredential waited 30 s for the read pool's connections")
		defer func() { <-done }() // it ends once the connections are released
	}
	for _, c := range held {
		c.Close()
	}
	// database/sql's Row, Rows and pool took 23 allocations a check; the statement alone 10.
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.HasCredential(ctx, "secured"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 14 {
		t.Errorf("HasCredential: %.0f allocations a check, want at most 14", allocs)
	}
}

// After Close the check fails with ErrClosed instead of waiting, and Close twice is harmless.
func TestSQLiteCredentialCheckAfterClose(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.HasCredential(ctx, "any"); !errors.Is(err, ErrClosed) {
		t.Errorf("HasCredential after Close: %v, want ErrClosed", err)
	}
}
