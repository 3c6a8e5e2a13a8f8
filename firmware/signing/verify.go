package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"math/big"

	"filippo.io/edwards25519"
)

// maxECDSASigLen is the longest DER ECDSA P-256 signature: SEQUENCE of two 33-byte INTEGERs.
const maxECDSASigLen = 72

// Verifier checks one detached signature against the bytes written to it, without keeping them:
// tee an upload into it (io.MultiWriter, io.TeeReader), then call Verify. The signature's form
// picks the algorithm: 64 raw bytes are Ed25519, a DER SEQUENCE is ECDSA P-256 over SHA-256.
// Every non-revoked trusted key of that algorithm is a candidate. A Verifier is not safe for
// concurrent use.
type Verifier struct {
	alg      Algorithm
	sig      []byte
	verified bool // Verify was called: no more writes

	// ECDSA: one SHA-256 over the stream, then one VerifyASN1 per candidate.
	digest hash.Hash
	ecdsa  []ecdsaCandidate

	// Ed25519: the signature split into R and S, and one SHA-512(R || A || M) per candidate.
	s       *edwards25519.Scalar
	ed25519 []ed25519Candidate
}

type ecdsaCandidate struct {
	key *Key
	pub *ecdsa.PublicKey
}

type ed25519Candidate struct {
	key  *Key
	negA *edwards25519.Point // -A, ready for the final double scalar multiplication
	h    hash.Hash           // SHA-512 fed with R || A, then the message
}

// NewVerifier prepares the check of sig against keys. It fails with ErrMalformedSignature when
// sig has neither form (or an Ed25519 S is not canonical), and with ErrNoKey when no
// non-revoked key has the signature's algorithm.
func NewVerifier(sig []byte, keys []*Key) (*Verifier, error) {
	v := &Verifier{sig: append([]byte(nil), sig...)}
	switch {
	case len(sig) == ed25519.SignatureSize:
		v.alg = Ed25519
		s, err := edwards25519.NewScalar().SetCanonicalBytes(v.sig[32:])
		if err != nil {
			return nil, fmt.Errorf("%w: Ed25519 S is not below the group order", ErrMalformedSignature)
		}
		v.s = s
	case len(sig) > 0 && sig[0] == 0x30: // DER SEQUENCE
		if err := checkECDSADER(sig); err != nil {
			return nil, err
		}
		v.alg = ECDSAP256SHA256
		v.digest = sha256.New()
	default:
		return nil, fmt.Errorf("%w: %d bytes, want 64 raw bytes (Ed25519) or a DER SEQUENCE (ECDSA P-256)", ErrMalformedSignature, len(sig))
	}

	for _, k := range keys {
		if k == nil || k.Revoked() || k.Algorithm != v.alg {
			continue
		}
		alg, pub, _, err := ParsePublicKey([]byte(k.PublicKeyPEM))
		if err != nil {
			return nil, fmt.Errorf("signing: key %s: %w", k.ID, err)
		}
		if alg != k.Algorithm {
			return nil, fmt.Errorf("signing: key %s: PEM holds an %s key, record says %s", k.ID, alg, k.Algorithm)
		}
		switch pub := pub.(type) {
		case *ecdsa.PublicKey:
			v.ecdsa = append(v.ecdsa, ecdsaCandidate{key: k, pub: pub})
		case ed25519.PublicKey:
			c, err := newEd25519Candidate(k, pub, v.sig[:32])
			if err != nil {
				return nil, fmt.Errorf("signing: key %s: %w", k.ID, err)
			}
			v.ed25519 = append(v.ed25519, c)
		}
	}
	if len(v.ecdsa)+len(v.ed25519) == 0 {
		return nil, fmt.Errorf("%w: no non-revoked %s key", ErrNoKey, v.alg)
	}
	return v, nil
}

// checkECDSADER accepts exactly one DER SEQUENCE of two INTEGERs and nothing after it; the
// range of r and s is left to ecdsa.VerifyASN1.
func checkECDSADER(sig []byte) error {
	if len(sig) > maxECDSASigLen {
		return fmt.Errorf("%w: %d-byte DER signature is too long for ECDSA P-256", ErrMalformedSignature, len(sig))
	}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil {
		return fmt.Errorf("%w: not a DER ECDSA signature: %v", ErrMalformedSignature, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the DER ECDSA signature", ErrMalformedSignature, len(rest))
	}
	return nil
}

func newEd25519Candidate(k *Key, pub ed25519.PublicKey, r []byte) (ed25519Candidate, error) {
	a, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return ed25519Candidate{}, fmt.Errorf("%w: Ed25519 key is not a curve point", ErrUnsupportedKey)
	}
	h := sha512.New()
	h.Write(r)
	h.Write(pub)
	return ed25519Candidate{key: k, negA: new(edwards25519.Point).Negate(a), h: h}, nil
}

// Algorithm is the scheme the signature's form selected.
func (v *Verifier) Algorithm() Algorithm { return v.alg }

// Write feeds the next bytes of the signed image. It never fails before Verify is called.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.verified {
		return 0, errors.New("signing: write after Verify")
	}
	if v.digest != nil {
		v.digest.Write(p)
	}
	for _, c := range v.ed25519 {
		c.h.Write(p)
	}
	return len(p), nil
}

// Verify finishes the check and returns the first candidate key that verifies the signature
// over everything written, or ErrBadSignature.
func (v *Verifier) Verify() (*Key, error) {
	v.verified = true
	switch v.alg {
	case ECDSAP256SHA256:
		sum := v.digest.Sum(nil)
		for _, c := range v.ecdsa {
			if ecdsa.VerifyASN1(c.pub, sum, v.sig) {
				return c.key, nil
			}
		}
	case Ed25519:
		for _, c := range v.ed25519 {
			if c.verify(v.sig[:32], v.s) {
				return c.key, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: tried %d %s key(s)", ErrBadSignature, len(v.ecdsa)+len(v.ed25519), v.alg)
}

// verify completes RFC 8032 PureEdDSA verification (cofactorless, as crypto/ed25519 does):
// k = SHA-512(R || A || M) mod l, then [S]B - [k]A must encode to R.
func (c ed25519Candidate) verify(r []byte, s *edwards25519.Scalar) bool {
	k, err := edwards25519.NewScalar().SetUniformBytes(c.h.Sum(nil))
	if err != nil {
		return false // cannot happen: SHA-512 output is 64 bytes
	}
	check := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, c.negA, s)
	return string(check.Bytes()) == string(r)
}
