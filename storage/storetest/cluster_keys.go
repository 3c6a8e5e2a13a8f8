package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/credentials/keyring"
)

// ClusterKeyStore is the keyring's store with the credential rows its retire check reads and
// the re-seal sweep rewrites.
type ClusterKeyStore interface {
	keyring.Store
	credentials.Store
	credentials.ResealStore
}

// RunClusterKeys is the contract of keyring.Store and credentials.ResealStore.
func RunClusterKeys(t *testing.T, open func(t *testing.T) ClusterKeyStore) {
	parallel(t, "FirstKeyRace", open, testClusterKeyFirstRace)
	parallel(t, "RotateRetire", open, testClusterKeyRotateRetire)
	parallel(t, "Reseal", open, testCredentialReseal)
}

func clusterKey(purpose string, id uint32, b byte) keyring.Sealed {
	return keyring.Sealed{Purpose: purpose, ID: id, State: keyring.Active, Nonce: bytes.Repeat([]byte{b}, 12),
		Secret: bytes.Repeat([]byte{b + 1}, 48), CreatedAt: at(time.Duration(b))}
}

// testClusterKeyFirstRace: nodes starting at once each try to store their own first key; exactly
// one wins and the others' writes change nothing.
func testClusterKeyFirstRace(t *testing.T, s ClusterKeyStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() { errs <- s.AddFirstClusterKey(ctx, clusterKey(keyring.DownloadToken, 1, byte(i+1))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AddFirstClusterKey: %v", err)
		}
	}
	keys, err := s.ClusterKeys(ctx, keyring.DownloadToken)
	if err != nil || len(keys) != 1 || keys[0].ID != 1 || keys[0].State != keyring.Active || len(keys[0].Secret) != 48 {
		t.Fatalf("ClusterKeys = %+v, %v; want one active key 1", keys, err)
	}
	// Once a purpose has keys, a first key is never added again, even with another id.
	if err := s.AddFirstClusterKey(ctx, clusterKey(keyring.DownloadToken, 7, 9)); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.ClusterKeys(ctx, keyring.DownloadToken); len(keys) != 1 {
		t.Fatalf("after a second first key: %d keys, want 1", len(keys))
	}
	if keys, _ := s.ClusterKeys(ctx, keyring.CredentialSeal); len(keys) != 0 {
		t.Fatalf("other purpose: %d keys, want 0", len(keys))
	}
}

func testClusterKeyRotateRetire(t *testing.T, s ClusterKeyStore) {
	ctx := context.Background()
	p := keyring.CredentialSeal
	if err := s.AddFirstClusterKey(ctx, clusterKey(p, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateClusterKey(ctx, clusterKey(p, 2, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateClusterKey(ctx, clusterKey(p, 2, 3)); !errors.Is(err, keyring.ErrConflict) {
		t.Fatalf("rotate to a taken id: %v, want ErrConflict", err)
	}
	keys, err := s.ClusterKeys(ctx, p)
	if err != nil || len(keys) != 2 || keys[0].State != keyring.Accepted || keys[1].State != keyring.Active || keys[1].Nonce[0] != 2 {
		t.Fatalf("after rotation: %+v, %v", keys, err)
	}
	// A row still sealed with key 1 keeps it.
	if err := s.SaveCredential(ctx, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   uint32
		want error
	}{{1, keyring.ErrInUse}, {2, keyring.ErrActive}, {9, keyring.ErrNotFound}} {
		if err := s.RetireClusterKey(ctx, p, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("retire %d: %v, want %v", tc.id, err, tc.want)
		}
	}
	if keys, _ := s.ClusterKeys(ctx, p); len(keys) != 2 {
		t.Fatalf("refused retirements changed the keys: %+v", keys)
	}
	if err := s.DeleteCredential(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireClusterKey(ctx, p, 1); err != nil {
		t.Fatalf("retire an unused accepted key: %v", err)
	}
	if keys, _ := s.ClusterKeys(ctx, p); len(keys) != 1 || keys[0].ID != 2 {
		t.Fatalf("after retirement: %+v", keys)
	}
	// Download-token keys are referenced by nothing stored: an accepted one retires at once.
	if err := s.AddFirstClusterKey(ctx, clusterKey(keyring.DownloadToken, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateClusterKey(ctx, clusterKey(keyring.DownloadToken, 2, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCredential(ctx, sealed("dev-2", "id-2", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireClusterKey(ctx, keyring.DownloadToken, 1); err != nil {
		t.Fatalf("retire download-token key 1: %v", err)
	}
}

func testCredentialReseal(t *testing.T, s ClusterKeyStore) {
	ctx := context.Background()
	for i := range 5 {
		c := sealed(fmt.Sprintf("dev-%d", i), fmt.Sprintf("id-%d", i), 1)
		if i == 3 {
			c.KeyID = 2
		}
		if err := s.SaveCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.CredentialsNotSealedWith(ctx, 2, "", 2)
	if err != nil || len(page) != 2 || page[0].Endpoint != "dev-0" || page[1].Endpoint != "dev-1" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page, err = s.CredentialsNotSealedWith(ctx, 2, "dev-1", 10)
	if err != nil || len(page) != 2 || page[0].Endpoint != "dev-2" || page[1].Endpoint != "dev-4" {
		t.Fatalf("second page (dev-3 is on key 2): %+v, %v", page, err)
	}
	next := sealed("dev-2", "id-2", 7)
	next.KeyID = 2
	if err := s.ResealCredential(ctx, next, bytes.Repeat([]byte{9}, 12)); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("re-seal over a changed nonce: %v, want ErrNotFound", err)
	}
	if err := s.ResealCredential(ctx, next, page[0].Nonce); err != nil {
		t.Fatal(err)
	}
	got, err := s.CredentialByEndpoint(ctx, "dev-2")
	if err != nil || got.KeyID != 2 || !bytes.Equal(got.Nonce, next.Nonce) || !got.CreatedAt.Equal(at(0)) {
		t.Fatalf("re-sealed row: %+v, %v", got, err)
	}
}
