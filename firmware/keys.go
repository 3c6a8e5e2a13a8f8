package firmware

import (
	"context"
	"fmt"
	"time"

	"github.com/lwota/lwota/firmware/signing"
)

// AddKey trusts the public key in pem (Ed25519 or ECDSA P-256, PKIX "PUBLIC KEY") under name.
// Adding a key that is already trusted (same fingerprint) is not an error: the existing key is
// returned unchanged, so provisioning scripts may run twice. A revoked key cannot come back:
// adding it again is ErrInvalid. A PEM that is not an accepted key is ErrInvalid.
func (c *Catalog) AddKey(ctx context.Context, name string, pem []byte) (*signing.Key, error) {
	c.keyMu.Lock() // check-then-save: a concurrent revocation must not be overwritten
	defer c.keyMu.Unlock()
	if err := checkText("key name", name, maxNameLen, false); err != nil {
		return nil, fmt.Errorf("add key: %w: %v", ErrInvalid, err)
	}
	k, err := newSigningKey(name, pem, c.now())
	if err != nil {
		return nil, fmt.Errorf("add key %s: %w: %w", name, ErrInvalid, err)
	}
	if old, err := c.keyByFingerprint(ctx, k.Fingerprint); err != nil || old != nil {
		return old, err
	}
	if k.ID == "" {
		k.ID = c.ids.next(k.CreatedAt)
	}
	if err := c.store.SaveKey(ctx, k); err != nil {
		// Someone added the same key meanwhile (fingerprints are unique): that one is the answer.
		if old, ferr := c.keyByFingerprint(ctx, k.Fingerprint); ferr == nil && old != nil {
			return old, nil
		}
		return nil, fmt.Errorf("add key %s: %w", name, err)
	}
	c.log.InfoContext(ctx, "signing key added", "id", k.ID, "name", k.Name, "algorithm", k.Algorithm,
		"fingerprint", k.Fingerprint)
	return k, nil
}

// keyByFingerprint returns the trusted key with fingerprint fp, nil if there is none, and
// ErrInvalid if it was revoked.
func (c *Catalog) keyByFingerprint(ctx context.Context, fp string) (*signing.Key, error) {
	keys, err := c.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("add key: %w", err)
	}
	for _, k := range keys {
		if k.Fingerprint != fp {
			continue
		}
		if k.Revoked() {
			return nil, fmt.Errorf("add key: %w: the key %s (%s) with this fingerprint was revoked at %s",
				ErrInvalid, k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339))
		}
		return k, nil
	}
	return nil, nil
}

// Keys lists every signing key, revoked ones included, oldest first.
func (c *Catalog) Keys(ctx context.Context) ([]*signing.Key, error) {
	keys, err := c.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// RevokeKey stops trusting the key id for new uploads (ErrKeyNotFound if there is none). Images
// it verified stay. Revoking a revoked key changes nothing and returns it.
func (c *Catalog) RevokeKey(ctx context.Context, id string) (*signing.Key, error) {
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	k, err := c.store.GetKey(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("revoke key %s: %w", id, err)
	}
	if k.Revoked() {
		return k, nil
	}
	k.RevokedAt = c.now()
	if err := c.store.SaveKey(ctx, k); err != nil {
		return nil, fmt.Errorf("revoke key %s: %w", id, err)
	}
	c.log.InfoContext(ctx, "signing key revoked", "id", k.ID, "name", k.Name, "fingerprint", k.Fingerprint)
	return k, nil
}
