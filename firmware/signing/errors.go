package signing

import "errors"

// Errors callers branch on. Each is wrapped with context (which key, which algorithm), so test
// them with errors.Is.
var (
	// ErrBadSignature: no candidate key verifies the signature over the streamed bytes.
	ErrBadSignature = errors.New("signing: signature not valid for any trusted key")
	// ErrNoKey: no non-revoked key of the signature's algorithm is trusted.
	ErrNoKey = errors.New("signing: no trusted key for the signature's algorithm")
	// ErrMalformedSignature: the signature is neither 64 raw Ed25519 bytes nor a DER ECDSA
	// signature, or it is out of range (an Ed25519 S that is not below the group order).
	ErrMalformedSignature = errors.New("signing: malformed signature")
	// ErrUnsupportedKey: the PEM is not an Ed25519 or ECDSA P-256 "PUBLIC KEY" block.
	ErrUnsupportedKey = errors.New("signing: unsupported public key")
)
