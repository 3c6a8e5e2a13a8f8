package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

var _ transport.PSKStore = (*credentials.Manager)(nil)

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func serverKey(b byte) []byte { return bytes.Repeat([]byte{b}, credentials.ServerKeyLen) }

func newManager(t *testing.T, s credentials.Store) *credentials.Manager {
	t.Helper()
	m, err := credentials.New(s, serverKey(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPutPSK(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m := newManager(t, s)
	if err := m.Put(ctx, "dev-1", "id-1", []byte("secretkey123")); err != nil {
		t.Fatal(err)
	}
	key, err := m.PSK(ctx, "id-1")
	if err != nil || string(key) != "secretkey123" {
		t.Fatalf("PSK = %q, %v", key, err)
	}
	ep, err := m.EndpointFor(ctx, "id-1")
	if err != nil || ep != "dev-1" {
		t.Fatalf("EndpointFor = %q, %v", ep, err)
	}
	if _, err := m.PSK(ctx, "nobody"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("PSK(unknown) = %v, want ErrNotFound", err)
	}
	// At rest the key is sealed.
	sealed, err := s.CredentialByEndpoint(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed.SealedKey, []byte("secretkey123")) || len(sealed.Nonce) != 12 {
		t.Fatalf("key stored in the clear or without a nonce: %+v", sealed)
	}
	// Replacing keeps CreatedAt.
	first := sealed.CreatedAt
	if err := m.Put(ctx, "dev-1", "id-1", []byte("otherkey")); err != nil {
		t.Fatal(err)
	}
	c, err := m.Get(ctx, "dev-1")
	if err != nil || string(c.Key) != "otherkey" || !c.CreatedAt.Equal(first) {
		t.Fatalf("Get = %+v, %v", c, err)
	}
}

func TestIdentityUnique(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	if err := m.Put(ctx, "dev-1", "id-1", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "dev-2", "id-1", []byte("k2")); !errors.Is(err, credentials.ErrIdentityTaken) {
		t.Fatalf("Put(dev-2, id-1) = %v, want ErrIdentityTaken", err)
	}
	if key, _ := m.PSK(ctx, "id-1"); string(key) != "k1" {
		t.Fatalf("id-1's key became %q", key)
	}
}

func TestInvalid(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	for _, tc := range []struct{ ep, id, key string }{
		{"", "id", "k"}, {"ep", "", "k"}, {"ep", "id", ""},
		{"ep", string(bytes.Repeat([]byte{'i'}, credentials.MaxIdentityLen+1)), "k"},
		{"ep", "id", string(bytes.Repeat([]byte{'k'}, credentials.MaxKeyLen+1))},
		{"ep", "\xff", "k"},
	} {
		if err := m.Put(ctx, tc.ep, tc.id, []byte(tc.key)); !errors.Is(err, credentials.ErrInvalid) {
			t.Errorf("Put(%q, %q, %d bytes) = %v, want ErrInvalid", tc.ep, tc.id, len(tc.key), err)
		}
	}
	if _, err := credentials.New(openStore(t), []byte("short"), nil); err == nil {
		t.Error("New with a 5-byte server key succeeded")
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	if err := m.Delete(ctx, "dev-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("Delete(missing) = %v", err)
	}
	if err := m.Put(ctx, "dev-1", "id-1", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PSK(ctx, "id-1"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("PSK after delete = %v", err)
	}
}

// A sealed key opens only under its server key and on its own row.
func TestSealBinding(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	m := newManager(t, s)
	if err := m.Put(ctx, "dev-1", "id-1", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	other, err := credentials.New(s, serverKey(8), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.PSK(ctx, "id-1"); err == nil {
		t.Fatal("opened under another server key")
	}
	sealed, err := s.CredentialByEndpoint(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	moved := *sealed
	moved.Endpoint, moved.Identity = "dev-2", "id-2"
	if err := s.SaveCredential(ctx, &moved); err != nil {
		t.Fatal(err)
	}
	if _, err := m.PSK(ctx, "id-2"); err == nil {
		t.Fatal("a sealed key moved to another row opened")
	}
	if key, err := m.PSK(ctx, "id-1"); err != nil || string(key) != "k1" {
		t.Fatalf("PSK(id-1) = %q, %v", key, err)
	}
}

// TestCertificateIdentity: a certificate identity registers as its own name, with no stored
// credential; a PSK identity may not take the certificate prefix.
func TestCertificateIdentity(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	if ep, err := m.EndpointFor(ctx, transport.X509IdentityPrefix+"urn:imei:1"); err != nil || ep != "urn:imei:1" {
		t.Fatalf("EndpointFor(x509:urn:imei:1) = %q, %v", ep, err)
	}
	if err := m.Put(ctx, "dev-1", transport.X509IdentityPrefix+"dev-1", []byte("k")); !errors.Is(err, credentials.ErrInvalid) {
		t.Fatalf("Put with an x509: identity = %v, want ErrInvalid", err)
	}
}
