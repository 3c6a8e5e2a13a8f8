package credentials_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
)

func entry(line int, ep, id, key string) credentials.ImportEntry {
	return credentials.ImportEntry{Line: line, Endpoint: ep, Identity: id, Key: []byte(key)}
}

// TestImport: an import is checked as a whole; any bad line refuses all of it, and the report
// names every bad line; a good import creates and rotates credentials in one go.
func TestImport(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	if err := m.Put(ctx, "old-1", "old-id-1", []byte("oldkey")); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "keep", "keep-id", []byte("keepkey")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		entries []credentials.ImportEntry
		lines   []string // "line: message fragment"
	}{
		{"empty", nil, []string{"0: the import holds no credentials"}},
		{"duplicates and taken identity", []credentials.ImportEntry{
			entry(2, "dev-1", "id-1", "k1"),
			entry(3, "dev-2", "id-1", "k2"),
			entry(4, "dev-1", "id-4", "k4"),
			entry(5, "dev-5", "keep-id", "k5"),
			entry(6, "", "id-6", "k6"),
			entry(7, "dev-7", "x509:dev-7", "k7"),
			entry(8, "dev-8", "id-8", ""),
		}, []string{
			`3: identity "id-1" is also on line 2`,
			`4: endpoint "dev-1" is also on line 2`,
			`5: identity "keep-id" belongs to endpoint "keep"`,
			"6: endpoint must be",
			"7: identity may not start with",
			"8: key must be",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Import(ctx, tc.entries)
			var ie *credentials.ImportError
			if !errors.As(err, &ie) || !errors.Is(err, credentials.ErrInvalid) {
				t.Fatalf("Import = %v, want an ImportError", err)
			}
			if len(ie.Lines) != len(tc.lines) {
				t.Fatalf("problems %+v, want %v", ie.Lines, tc.lines)
			}
			for i, want := range tc.lines {
				got := fmt.Sprintf("%d: %s", ie.Lines[i].Line, ie.Lines[i].Message)
				if !strings.Contains(got, want) {
					t.Errorf("problem %d: %q, want %q", i, got, want)
				}
			}
			if _, err := m.Get(ctx, "dev-1"); !errors.Is(err, credentials.ErrNotFound) {
				t.Fatalf("a refused import stored dev-1: %v", err)
			}
		})
	}

	// Rotation of old-1 (which gives its identity to new-2 in the same import) and two new ones.
	time.Sleep(time.Millisecond) // UpdatedAt moves past CreatedAt
	old, _ := m.Get(ctx, "old-1")
	res, err := m.Import(ctx, []credentials.ImportEntry{
		entry(2, "old-1", "old-id-1b", "newkey"),
		entry(3, "new-2", "old-id-1", "k2"),
		entry(4, "new-3", "id-3", "k3"),
	})
	if err != nil || res.Created != 2 || res.Replaced != 1 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	for id, want := range map[string]string{"old-id-1b": "newkey", "old-id-1": "k2", "id-3": "k3", "keep-id": "keepkey"} {
		if key, err := m.PSK(ctx, id); err != nil || string(key) != want {
			t.Errorf("PSK(%s) = %q, %v; want %q", id, key, err, want)
		}
	}
	if c, _ := m.Get(ctx, "old-1"); !c.CreatedAt.Equal(old.CreatedAt) || !c.UpdatedAt.After(old.UpdatedAt) {
		t.Fatalf("rotated old-1: created %v (was %v), updated %v (was %v)", c.CreatedAt, old.CreatedAt, c.UpdatedAt, old.UpdatedAt)
	}
	if ep, _ := m.EndpointFor(ctx, "old-id-1"); ep != "new-2" {
		t.Fatalf("old-id-1 now registers as %q, want new-2", ep)
	}
}

// TestImport10k imports 10,000 credentials into SQLite and logs how long it took (no assertion
// on time: the machine is shared).
func TestImport10k(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	entries := make([]credentials.ImportEntry, 10000)
	for i := range entries {
		entries[i] = entry(i+2, fmt.Sprintf("urn:imei:%015d", i), fmt.Sprintf("psk-%06d", i), fmt.Sprintf("key-%012d", i))
	}
	start := time.Now()
	res, err := m.Import(ctx, entries)
	if err != nil || res.Created != len(entries) {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	first := time.Since(start)
	start = time.Now()
	if res, err = m.Import(ctx, entries); err != nil || res.Replaced != len(entries) {
		t.Fatalf("re-Import = %+v, %v", res, err)
	}
	t.Logf("imported 10000 credentials into SQLite in %v (all new), %v (all replaced)", first, time.Since(start))
	if key, err := m.PSK(ctx, "psk-009999"); err != nil || string(key) != "key-000000009999" {
		t.Fatalf("PSK(psk-009999) = %q, %v", key, err)
	}
}
