package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The NoSec credential check on SQLite reads the file as it is at the moment of the check: a
// credential another connection (another process: a second server, an operator's sqlite3)
// commits to the same file is seen by the very next check, and one it removes is gone. A cache
// of the answers, however coherent with this store's own writer, fails this.
func TestHasCredentialSeesAnotherConnection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lwota.db")
	s := open(t, path)
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const ep = "urn:imei:000000000000042"
	for round := range 3 {
		if has, err := s.HasCredential(ctx, ep); err != nil || has {
			t.Fatalf("round %d, before: HasCredential = %v, %v; want false", round, has, err)
		}
		if _, err := other.ExecContext(ctx, "INSERT INTO device_credentials (endpoint, identity, nonce, sealed_key, key_id) VALUES (?, ?, ?, ?, 1)",
			ep, "id-42", make([]byte, 12), []byte("sealed")); err != nil {
			t.Fatal(err)
		}
		if has, err := s.HasCredential(ctx, ep); err != nil || !has {
			t.Fatalf("round %d, credential added by another connection: HasCredential = %v, %v; want true", round, has, err)
		}
		if _, err := other.ExecContext(ctx, "DELETE FROM device_credentials WHERE endpoint = ?", ep); err != nil {
			t.Fatal(err)
		}
	}
}

// Every endpoint name gets its own exact answer when many are checked at once, whatever its
// bytes: JSON's special characters, Unicode, invalid UTF-8 and NUL (which cannot go through the
// batch's JSON array and take a point read), duplicates within a batch, and names that differ
// only in case or in a trailing space.
func TestHasCredentialAnyName(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "lwota.db"))
	tests := []struct {
		ep  string
		has bool
	}{
		{"plain", true},
		{"Plain", false},
		{"plain ", false},
		{`quote"d`, true},
		{`back\slash`, true},
		{`back\\slash`, false},
		{"<html&amp>", true},
		{"ünïcødé-端点", true},
		{"ünïcødé-端", false},
		{"bad-utf8-\xff\xfe", true},
		{"bad-utf8-\xff", false},
		{"nul\x00inside", true},
		{"nul", false},
		{"new\nline\ttab", true},
		{strings.Repeat("long-", 200), true},
		{"", false},
	}
	for i, tt := range tests {
		if tt.has {
			c := sealedFor(tt.ep)
			c.Identity = fmt.Sprintf("id-%d", i)
			if err := s.SaveCredential(ctx, c); err != nil {
				t.Fatalf("save %q: %v", tt.ep, err)
			}
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		for _, tt := range tests {
			wg.Go(func() {
				if has, err := s.HasCredential(ctx, tt.ep); err != nil || has != tt.has {
					t.Errorf("HasCredential(%q) = %v, %v; want %v", tt.ep, has, err, tt.has)
				}
			})
		}
	}
	wg.Wait()
}
