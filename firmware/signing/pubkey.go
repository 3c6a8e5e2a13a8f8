package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"filippo.io/edwards25519"
)

// keyIDLen is how many hex digits of the fingerprint make a Key's ID (64 bits).
const keyIDLen = 16

// ParsePublicKey reads one PEM "PUBLIC KEY" block (a DER SubjectPublicKeyInfo, as
// `openssl pkey -pubout` writes it) holding an Ed25519 or an ECDSA P-256 key. It returns the
// algorithm, the key (ed25519.PublicKey or *ecdsa.PublicKey) and the fingerprint: the hex
// SHA-256 of the key's canonical DER SubjectPublicKeyInfo. Private keys, RSA, other curves, more
// than one PEM block and anything else fail with ErrUnsupportedKey.
func ParsePublicKey(pemData []byte) (Algorithm, crypto.PublicKey, string, error) {
	block, rest := pem.Decode(pemData)
	if block == nil {
		return "", nil, "", fmt.Errorf("%w: no PEM block found", ErrUnsupportedKey)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return "", nil, "", fmt.Errorf("%w: more than one PEM block (%q after %q)", ErrUnsupportedKey, next.Type, block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return "", nil, "", fmt.Errorf("%w: data after the PEM block", ErrUnsupportedKey)
	}
	if block.Type != "PUBLIC KEY" {
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return "", nil, "", fmt.Errorf("%w: got a %q block: upload the public half (openssl pkey -in key.pem -pubout)", ErrUnsupportedKey, block.Type)
		}
		return "", nil, "", fmt.Errorf("%w: PEM block is %q, want \"PUBLIC KEY\"", ErrUnsupportedKey, block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return "", nil, "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	var alg Algorithm
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if err := checkEd25519Point(k); err != nil {
			return "", nil, "", err
		}
		alg = Ed25519
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", nil, "", fmt.Errorf("%w: ECDSA curve %s, only P-256 is accepted", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		alg = ECDSAP256SHA256
	default:
		return "", nil, "", fmt.Errorf("%w: %T keys are not accepted, only Ed25519 and ECDSA P-256", ErrUnsupportedKey, pub)
	}
	// Fingerprint the canonical re-encoding, so the same key always has the same ID.
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", nil, "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	sum := sha256.Sum256(der)
	return alg, pub, hex.EncodeToString(sum[:]), nil
}

// checkEd25519Point refuses Ed25519 keys that are not curve points or have small order: with
// such a key, cofactorless verification accepts forgeries that need no private key.
func checkEd25519Point(k ed25519.PublicKey) error {
	p, err := new(edwards25519.Point).SetBytes(k)
	if err != nil {
		return fmt.Errorf("%w: Ed25519 key is not a curve point", ErrUnsupportedKey)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: Ed25519 key has small order", ErrUnsupportedKey)
	}
	return nil
}

// NewKey validates pemData with ParsePublicKey and returns a trusted key created at now. Its ID
// is the first 16 hex digits of the fingerprint, and PublicKeyPEM is the canonical re-encoding.
func NewKey(name string, pemData []byte, now time.Time) (*Key, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, fmt.Errorf("signing: key name is empty")
	}
	alg, pub, fp, err := ParsePublicKey(pemData)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", name, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", name, err)
	}
	return &Key{
		ID:           fp[:keyIDLen],
		Name:         name,
		Algorithm:    alg,
		PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		Fingerprint:  fp,
		CreatedAt:    now,
	}, nil
}
