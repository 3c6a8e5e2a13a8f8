package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lwota/lwota/server/credentials"
)

// RunCredentials is the contract of credentials.Store.
func RunCredentials(t *testing.T, open func(t *testing.T) credentials.Store) {
	parallel(t, "RoundTrip", open, testCredentialRoundTrip)
	parallel(t, "IdentityUnique", open, testCredentialIdentityUnique)
	parallel(t, "Replace", open, testCredentialReplace)
	parallel(t, "Delete", open, testCredentialDelete)
	parallel(t, "SaveMany", open, testCredentialSaveMany)
	parallel(t, "SaveManyAllOrNothing", open, testCredentialSaveManyAllOrNothing)
}

func sealed(endpoint, identity string, b byte) *credentials.Sealed {
	return &credentials.Sealed{
		Endpoint: endpoint, Identity: identity,
		Nonce: bytes.Repeat([]byte{b}, 12), SealedKey: bytes.Repeat([]byte{b + 1}, 28),
		KeyID: uint32(b), CreatedAt: at(0), UpdatedAt: at(1e9),
	}
}

func checkSealed(t *testing.T, got, want *credentials.Sealed) {
	t.Helper()
	if got.Endpoint != want.Endpoint || got.Identity != want.Identity || !bytes.Equal(got.Nonce, want.Nonce) ||
		!bytes.Equal(got.SealedKey, want.SealedKey) || got.KeyID != want.KeyID || !utc(got.CreatedAt).Equal(utc(want.CreatedAt)) ||
		!utc(got.UpdatedAt).Equal(utc(want.UpdatedAt)) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func testCredentialRoundTrip(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if _, err := s.CredentialByIdentity(ctx, "id-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("CredentialByIdentity(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.CredentialByEndpoint(ctx, "dev-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("CredentialByEndpoint(missing) = %v, want ErrNotFound", err)
	}
	want := sealed("dev-1", "id-1", 1)
	if err := s.SaveCredential(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.CredentialByIdentity(ctx, "id-1")
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, got, want)
	got, err = s.CredentialByEndpoint(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, got, want)
}

func testCredentialIdentityUnique(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if err := s.SaveCredential(ctx, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	err := s.SaveCredential(ctx, sealed("dev-2", "id-1", 2))
	if !errors.Is(err, credentials.ErrIdentityTaken) {
		t.Fatalf("second endpoint with the same identity: %v, want ErrIdentityTaken", err)
	}
	if _, err := s.CredentialByEndpoint(ctx, "dev-2"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("dev-2 stored anyway: %v", err)
	}
	got, err := s.CredentialByIdentity(ctx, "id-1")
	if err != nil || got.Endpoint != "dev-1" {
		t.Fatalf("id-1 -> %v, %v; want dev-1", got, err)
	}
}

func testCredentialReplace(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if err := s.SaveCredential(ctx, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	want := sealed("dev-1", "id-1b", 5)
	if err := s.SaveCredential(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CredentialByIdentity(ctx, "id-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("old identity still found: %v", err)
	}
	got, err := s.CredentialByEndpoint(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, got, want)
	// The freed identity can go to another endpoint.
	if err := s.SaveCredential(ctx, sealed("dev-2", "id-1", 7)); err != nil {
		t.Fatalf("reuse a freed identity: %v", err)
	}
}

func testCredentialDelete(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if err := s.DeleteCredential(ctx, "dev-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("delete missing = %v, want ErrNotFound", err)
	}
	if err := s.SaveCredential(ctx, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredential(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CredentialByIdentity(ctx, "id-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("deleted credential found: %v", err)
	}
	if err := s.SaveCredential(ctx, sealed("dev-9", "id-1", 3)); err != nil {
		t.Fatalf("reuse a deleted identity: %v", err)
	}
}

// testCredentialSaveMany: SaveCredentials stores a batch larger than one statement, replaces
// existing rows (identities may swap between the batch's endpoints), and CredentialRefs finds rows
// by endpoint or by identity.
func testCredentialSaveMany(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if err := s.SaveCredentials(ctx, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	var batch []*credentials.Sealed
	for i := range 1234 {
		batch = append(batch, sealed(fmt.Sprintf("dev-%04d", i), fmt.Sprintf("id-%04d", i), byte(i)))
	}
	if err := s.SaveCredentials(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got, err := s.CredentialByIdentity(ctx, "id-1233")
	if err != nil {
		t.Fatal(err)
	}
	checkSealed(t, got, batch[1233])

	swap0, swap1 := sealed("dev-0000", "id-0001", 40), sealed("dev-0001", "id-0000", 41)
	swap0.CreatedAt = at(0)
	if err := s.SaveCredentials(ctx, []*credentials.Sealed{swap0, swap1}); err != nil {
		t.Fatalf("swap identities: %v", err)
	}
	for _, want := range []*credentials.Sealed{swap0, swap1} {
		got, err := s.CredentialByEndpoint(ctx, want.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		checkSealed(t, got, want)
	}

	refs, err := s.CredentialRefs(ctx, []string{"dev-0005", "dev-none"}, []string{"id-0000", "id-0007", "id-none"})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, r := range refs {
		found[r.Endpoint] = r.Identity
		if !utc(r.CreatedAt).Equal(utc(at(0))) {
			t.Errorf("ref %+v: created_at %v", r, r.CreatedAt)
		}
	}
	want := map[string]string{"dev-0005": "id-0005", "dev-0001": "id-0000", "dev-0007": "id-0007"}
	if fmt.Sprint(found) != fmt.Sprint(want) {
		t.Fatalf("refs %v, want %v", found, want)
	}
	if refs, err := s.CredentialRefs(ctx, nil, nil); err != nil || len(refs) != 0 {
		t.Fatalf("refs of nothing: %v, %v", refs, err)
	}
}

// testCredentialSaveManyAllOrNothing: an identity held outside the batch fails the whole batch.
func testCredentialSaveManyAllOrNothing(t *testing.T, s credentials.Store) {
	ctx := context.Background()
	if err := s.SaveCredential(ctx, sealed("dev-9", "id-9", 9)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCredential(ctx, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	err := s.SaveCredentials(ctx, []*credentials.Sealed{
		sealed("dev-1", "id-1-new", 2), sealed("dev-2", "id-2", 3), sealed("dev-3", "id-9", 4),
	})
	if !errors.Is(err, credentials.ErrIdentityTaken) {
		t.Fatalf("batch taking dev-9's identity: %v, want ErrIdentityTaken", err)
	}
	if got, err := s.CredentialByEndpoint(ctx, "dev-1"); err != nil || got.Identity != "id-1" {
		t.Fatalf("dev-1 after the failed batch: %+v, %v", got, err)
	}
	if _, err := s.CredentialByEndpoint(ctx, "dev-2"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("dev-2 stored by the failed batch: %v", err)
	}
}
