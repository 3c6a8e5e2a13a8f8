// Package signing keeps the trusted public keys of image signers and verifies detached signatures
// (Ed25519, ECDSA P-256 over SHA-256, as openssl makes them) while an image streams past.
package signing

import "time"

// Algorithm names a signature scheme lwota accepts.
type Algorithm string

// The accepted schemes: pure Ed25519 over the image bytes (64-byte raw signature) and ECDSA on
// P-256 over SHA-256 of the image bytes (ASN.1 DER signature).
const (
	Ed25519         Algorithm = "ed25519"
	ECDSAP256SHA256 Algorithm = "ecdsa-p256-sha256"
)

// Key is a trusted signing key. Revoked keys stay listed (images signed with them remain
// explainable) but verify nothing new.
type Key struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Algorithm    Algorithm `json:"algorithm"`
	PublicKeyPEM string    `json:"public_key_pem"`
	Fingerprint  string    `json:"fingerprint"` // SHA-256 of the DER SubjectPublicKeyInfo, hex
	CreatedAt    time.Time `json:"created_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the key may no longer verify uploads.
func (k *Key) Revoked() bool { return !k.RevokedAt.IsZero() }
