package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/credentials/keyring"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	kek      = bytes.Repeat([]byte{0x11}, keyring.KeyLen)
	otherKEK = bytes.Repeat([]byte{0x22}, keyring.KeyLen)
)

var backends = []struct {
	name string
	dsn  func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "lwota.db") }},
	{"postgres", pgtest.Start},
}

func open(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRing(t *testing.T, s keyring.Store, key []byte) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(s, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func forBackends(t *testing.T, test func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.dsn(t))
		})
	}
}

// Nodes starting at once on an empty database agree on one key per purpose; a node with another
// cluster key is refused and writes nothing.
func TestOpen(t *testing.T) {
	forBackends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		const nodes = 4
		sets := make([]map[string]keyring.Set, nodes)
		errs := make([]error, nodes)
		var wg sync.WaitGroup
		for i := range nodes {
			s := open(t, dsn) // each node its own connection pool
			wg.Go(func() { sets[i], errs[i] = newRing(t, s, kek).Open(ctx, nil) })
		}
		wg.Wait()
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("node %d: %v", i, errs[i])
			}
			for _, p := range keyring.Purposes {
				got, want := sets[i][p], sets[0][p]
				if len(got.Keys) != 1 || got.Active().ID != 1 || !bytes.Equal(got.Active().Secret, want.Active().Secret) {
					t.Fatalf("node %d %s: %+v, node 0 has %+v", i, p, got, want)
				}
			}
		}
		if bytes.Equal(sets[0][keyring.DownloadToken].Active().Secret, sets[0][keyring.CredentialSeal].Active().Secret) {
			t.Fatal("both purposes got the same key")
		}
		s := open(t, dsn)
		if _, err := newRing(t, s, otherKEK).Open(ctx, nil); !errors.Is(err, keyring.ErrWrongClusterKey) {
			t.Fatalf("another cluster key: %v, want ErrWrongClusterKey", err)
		}
		rows, _ := s.ClusterKeys(ctx, keyring.DownloadToken)
		if len(rows) != 1 {
			t.Fatalf("the refused node changed the keyring: %d keys", len(rows))
		}
	})
}

// A wrong cluster key is refused before anything is written even when only some purposes have
// keys: the missing one is not created under the wrong key. The active key is never retired.
func TestOpenWrongKeyWritesNothing(t *testing.T) {
	ctx := context.Background()
	full := open(t, filepath.Join(t.TempDir(), "lwota.db"))
	r := newRing(t, full, kek)
	if _, err := r.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Retire(ctx, keyring.CredentialSeal, 1); !errors.Is(err, keyring.ErrActive) {
		t.Fatalf("retire the active key: %v, want ErrActive", err)
	}
	// A database holding download-token keys only.
	partial := open(t, filepath.Join(t.TempDir(), "lwota.db"))
	rows, _ := full.ClusterKeys(ctx, keyring.DownloadToken)
	if err := partial.AddFirstClusterKey(ctx, rows[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := newRing(t, partial, otherKEK).Open(ctx, nil); !errors.Is(err, keyring.ErrWrongClusterKey) {
		t.Fatalf("wrong key: %v, want ErrWrongClusterKey", err)
	}
	if rows, _ := partial.ClusterKeys(ctx, keyring.CredentialSeal); len(rows) != 0 {
		t.Fatalf("a credential-seal key was created under the wrong cluster key: %+v", rows)
	}
	if _, err := newRing(t, partial, kek).Open(ctx, nil); err != nil {
		t.Fatalf("the right key then completes the keyring: %v", err)
	}
}

// Imported node-local keys become key 1; a bad import is refused.
func TestOpenImport(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "lwota.db"))
	tok := bytes.Repeat([]byte{7}, keyring.KeyLen)
	if _, err := newRing(t, s, kek).Open(ctx, map[string][]byte{"nope": tok}); !errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("unknown purpose: %v", err)
	}
	if _, err := newRing(t, s, kek).Open(ctx, map[string][]byte{keyring.DownloadToken: tok[:5]}); !errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
	sets, err := newRing(t, s, kek).Open(ctx, map[string][]byte{keyring.DownloadToken: tok})
	if err != nil || !bytes.Equal(sets[keyring.DownloadToken].Active().Secret, tok) {
		t.Fatalf("import: %+v, %v", sets, err)
	}
	// Importing into a keyring that already has a different key is refused.
	if _, err := newRing(t, s, kek).Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{8}, keyring.KeyLen)
	if _, err := newRing(t, s, kek).Open(ctx, map[string][]byte{keyring.DownloadToken: other}); err != nil {
		t.Fatalf("import into a keyring that has keys is ignored, got %v", err)
	}
}

func TestParseClusterKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{fmt.Sprintf("%064x", 1), true},
		{" " + fmt.Sprintf("%064x", 1) + "\n", true},
		{fmt.Sprintf("%062x", 1), false},
		{fmt.Sprintf("%066x", 1), false},
		{"zz" + fmt.Sprintf("%062x", 1), false},
		{"", false},
	} {
		if _, err := keyring.ParseClusterKey(tc.in); (err == nil) != tc.ok {
			t.Errorf("ParseClusterKey(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

// Rotation, the re-seal sweep and retirement of the credential-seal key, with a second node
// following through Watch.
func TestRotateResealRetire(t *testing.T) {
	forBackends(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := open(t, dsn)
		a := newRing(t, s, kek)
		sets, err := a.Open(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		seal := sets[keyring.CredentialSeal]
		m, err := credentials.New(s, seal.Active().Secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := m.Put(ctx, fmt.Sprintf("dev-%d", i), fmt.Sprintf("id-%d", i), []byte{byte(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}

		// Node b watches the keyring.
		b := newRing(t, open(t, dsn), kek)
		watchCtx, stop := context.WithCancel(ctx)
		seen := make(chan keyring.Set, 8)
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.Watch(watchCtx, 20*time.Millisecond, sets, func(s keyring.Set) { seen <- s })
		}()
		defer func() { stop(); <-done }()

		rotated, err := a.Rotate(ctx, keyring.CredentialSeal)
		if err != nil || rotated.Active().ID != 2 || len(rotated.Keys) != 2 || rotated.Keys[1].State != keyring.Accepted {
			t.Fatalf("rotate: %+v, %v", rotated, err)
		}
		select {
		case got := <-seen:
			if !got.Equal(rotated) {
				t.Fatalf("b saw %+v, want %+v", got, rotated)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("b never saw the rotation")
		}
		keys := map[uint32][]byte{}
		for _, k := range rotated.Keys {
			keys[k.ID] = k.Secret
		}
		if err := m.SetKeys(2, keys); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(ctx, "dev-new", "id-new", []byte("new")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Retire(ctx, keyring.CredentialSeal, 1); !errors.Is(err, keyring.ErrInUse) {
			t.Fatalf("retire key 1 with rows on it: %v, want ErrInUse", err)
		}
		res, err := m.Reseal(ctx, s, 2) // small batches: the sweep pages
		if err != nil || res.Resealed != 5 {
			t.Fatalf("re-seal: %+v, %v", res, err)
		}
		if res, err := m.Reseal(ctx, s, 2); err != nil || res.Resealed != 0 {
			t.Fatalf("second re-seal: %+v, %v; want nothing left", res, err)
		}
		after, err := a.Retire(ctx, keyring.CredentialSeal, 1)
		if err != nil || len(after.Keys) != 1 {
			t.Fatalf("retire after re-seal: %+v, %v", after, err)
		}
		// With key 1 gone, every row still opens under key 2 alone.
		if err := m.SetKeys(2, map[uint32][]byte{2: keys[2]}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			k, err := m.PSK(ctx, fmt.Sprintf("id-%d", i))
			if err != nil || !bytes.Equal(k, []byte{byte(i + 1)}) {
				t.Fatalf("id-%d after retirement: %x, %v", i, k, err)
			}
		}
	})
}
