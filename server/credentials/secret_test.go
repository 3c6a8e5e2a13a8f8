package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/lwota/lwota/server/credentials"
)

// TestSealSecret: a sealed secret opens on its own endpoint and label only, never in the clear,
// and never as a PSK row (its additional data differs); bad input is refused.
func TestSealSecret(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, openStore(t))
	secret := bytes.Repeat([]byte{0xa5}, 200) // longer than any PSK
	s, err := m.SealSecret("dev-1", "bootstrap-x509-key", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.SealedKey, secret[:16]) {
		t.Fatal("sealed in the clear")
	}
	if got, err := m.OpenSecret(ctx, s); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %x %v", got, err)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *credentials.Sealed)
	}{
		{"other endpoint", func(c *credentials.Sealed) { c.Endpoint = "dev-2" }},
		{"other label", func(c *credentials.Sealed) { c.Identity = "other" }},
		{"flipped bit", func(c *credentials.Sealed) { c.SealedKey[0] ^= 1 }},
		{"unknown key id", func(c *credentials.Sealed) { c.KeyID = 99 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *s
			c.SealedKey = bytes.Clone(s.SealedKey)
			tc.mod(&c)
			if _, err := m.OpenSecret(ctx, &c); err == nil {
				t.Fatal("opened")
			}
		})
	}
	if _, err := m.OpenSecret(ctx, nil); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("nil: %v", err)
	}
	// A PSK sealed under the same endpoint and identity does not open as a secret.
	psk, err := m.Seal("dev-1", "bootstrap-x509-key", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.OpenSecret(ctx, psk); err == nil {
		t.Fatal("a PSK opened as a secret")
	}
	for _, bad := range []struct{ ep, label string }{{"", "l"}, {"dev-1", ""}} {
		if _, err := m.SealSecret(bad.ep, bad.label, secret); !errors.Is(err, credentials.ErrInvalid) {
			t.Fatalf("%q %q: %v", bad.ep, bad.label, err)
		}
	}
	if _, err := m.SealSecret("dev-1", "l", nil); !errors.Is(err, credentials.ErrInvalid) {
		t.Fatalf("empty secret: %v", err)
	}
}
