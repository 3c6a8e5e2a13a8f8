package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/lwota/lwota/server/credentials"
)

// RunCredentials is the contract of credentials.Store.
func RunCredentials(t *testing.T, open func(t *testing.T) credentials.Store) {
	parallel(t, "RoundTrip", open, testCredentialRoundTrip)
	parallel(t, "IdentityUnique", open, testCredentialIdentityUnique)
	parallel(t, "Replace", open, testCredentialReplace)
	parallel(t, "Delete", open, testCredentialDelete)
}

func sealed(endpoint, identity string, b byte) *credentials.Sealed {
	return &credentials.Sealed{
		Endpoint: endpoint, Identity: identity,
		Nonce: bytes.Repeat([]byte{b}, 12), SealedKey: bytes.Repeat([]byte{b + 1}, 28),
		CreatedAt: at(0), UpdatedAt: at(1e9),
	}
}

func checkSealed(t *testing.T, got, want *credentials.Sealed) {
	t.Helper()
	if got.Endpoint != want.Endpoint || got.Identity != want.Identity || !bytes.Equal(got.Nonce, want.Nonce) ||
		!bytes.Equal(got.SealedKey, want.SealedKey) || !utc(got.CreatedAt).Equal(utc(want.CreatedAt)) ||
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
