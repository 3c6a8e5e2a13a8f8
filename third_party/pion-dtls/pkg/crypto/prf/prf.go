// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

// Package prf implements TLS 1.2 Pseudorandom functions
package prf

import (
	"bytes"
	"crypto/ecdh"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"reflect"

	"github.com/pion/dtls/v3/pkg/crypto/elliptic"
	"github.com/pion/dtls/v3/pkg/protocol"
)

const (
	masterSecretLabel         = "master secret"
	extendedMasterSecretLabel = "extended master secret"
	keyExpansionLabel         = "key expansion"
	verifyDataClientLabel     = "client finished"
	verifyDataServerLabel     = "server finished"
)

// HashFunc allows callers to decide what hash is used in PRF.
type HashFunc func() hash.Hash

// EncryptionKeys is all the state needed for a TLS CipherSuite.
type EncryptionKeys struct {
	MasterSecret   []byte
	ClientMACKey   []byte
	ServerMACKey   []byte
	ClientWriteKey []byte
	ServerWriteKey []byte
	ClientWriteIV  []byte
	ServerWriteIV  []byte
}

var errInvalidNamedCurve = &protocol.FatalError{Err: errors.New("invalid named curve")} //nolint:err113

func (e *EncryptionKeys) String() string {
	return fmt.Sprintf(`encryptionKeys:
- masterSecret: %#v
- clientMACKey: %#v
- serverMACKey: %#v
- clientWriteKey: %#v
- serverWriteKey: %#v
- clientWriteIV: %#v
- serverWriteIV: %#v
`,
		e.MasterSecret,
		e.ClientMACKey,
		e.ServerMACKey,
		e.ClientWriteKey,
		e.ServerWriteKey,
		e.ClientWriteIV,
		e.ServerWriteIV)
}

// PSKPreMasterSecret generates the PSK Premaster Secret
// The premaster secret is formed as follows: if the PSK is N octets
// long, concatenate a uint16 with the value N, N zero octets, a second
// uint16 with the value N, and the PSK itself.
//
// https://tools.ietf.org/html/rfc4279#section-2
func PSKPreMasterSecret(psk []byte) []byte {
	pskLen := uint16(len(psk)) //nolint:gosec // G115

	out := append(make([]byte, 2+pskLen+2), psk...)
	binary.BigEndian.PutUint16(out, pskLen)
	binary.BigEndian.PutUint16(out[2+pskLen:], pskLen)

	return out
}

// EcdhePSKPreMasterSecret implements TLS 1.2 Premaster Secret generation given a psk, a keypair and a curve
//
// https://datatracker.ietf.org/doc/html/rfc5489#section-2
func EcdhePSKPreMasterSecret(psk, publicKey, privateKey []byte, curve elliptic.Curve) ([]byte, error) {
	preMasterSecret, err := PreMasterSecret(publicKey, privateKey, curve)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 2+len(preMasterSecret)+2+len(psk))

	// write preMasterSecret length
	offset := 0
	binary.BigEndian.PutUint16(out[offset:], uint16(len(preMasterSecret))) //nolint:gosec // G115
	offset += 2

	// write preMasterSecret
	copy(out[offset:], preMasterSecret)
	offset += len(preMasterSecret)

	// write psk length
	binary.BigEndian.PutUint16(out[offset:], uint16(len(psk))) //nolint:gosec // G115
	offset += 2

	// write psk
	copy(out[offset:], psk)

	return out, nil
}

// PreMasterSecret implements TLS 1.2 Premaster Secret generation given a keypair and a curve.
func PreMasterSecret(publicKey, privateKey []byte, curve elliptic.Curve) ([]byte, error) {
	var ec ecdh.Curve

	switch curve {
	case elliptic.X25519:
		ec = ecdh.X25519()
	case elliptic.P256:
		ec = ecdh.P256()
	case elliptic.P384:
		ec = ecdh.P384()
	default:
		return nil, errInvalidNamedCurve
	}

	sk, err := ec.NewPrivateKey(privateKey)
	if err != nil {
		return nil, err
	}

	pk, err := ec.NewPublicKey(publicKey) // NIST: SEC1 uncompressed; X25519: 32-byte u
	if err != nil {
		return nil, err
	}

	return sk.ECDH(pk)
}

// PHash is PRF is the SHA-256 hash function is used for all cipher suites
// defined in this TLS 1.2 document and in TLS documents published prior to this
// document when TLS 1.2 is negotiated.  New cipher suites MUST explicitly
// specify a PRF and, in general, SHOULD use the TLS PRF with SHA-256 or a
// stronger standard hash function.
//
//	P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) +
//	                       HMAC_hash(secret, A(2) + seed) +
//	                       HMAC_hash(secret, A(3) + seed) + ...
//
// A() is defined as:
//
//	A(0) = seed
//	A(i) = HMAC_hash(secret, A(i-1))
//
// P_hash can be iterated as many times as necessary to produce the
// required quantity of data.  For example, if P_SHA256 is being used to
// create 80 bytes of data, it will have to be iterated three times
// (through A(3)), creating 96 bytes of output data; the last 16 bytes
// of the final iteration will then be discarded, leaving 80 bytes of
// output data.
//
// https://tools.ietf.org/html/rfc4346w
func PHash(secret, seed []byte, requestedLength int, hashFunc HashFunc) ([]byte, error) {
	// lwota patch 22: SHA-256 (every suite lwota offers) takes a path without hash objects.
	if requestedLength >= 0 && isSHA256(hashFunc) {
		return pHashSHA256(secret, seed, requestedLength), nil
	}
	// lwota patch 22: the seed is copied before it reaches hash.Hash's Write (an interface call,
	// through which it escapes), so that the callers' seeds, built on their stacks for the
	// SHA-256 path, stay there.
	// (A variable of its own: escape analysis does not tell the two values of one variable apart.)
	heapSeed := bytes.Clone(seed)
	// lwota patch 6: one HMAC for every step, Reset between them. hmac.New hashes the padded
	// key into its inner and outer states (and allocates both hashes); Reset restores those
	// states, so the key schedule runs once per PHash rather than twice per iteration. A(i) is
	// kept in one buffer and written before the seed, rather than appended to it in a new one.
	mac := hmac.New(hashFunc, secret)
	size := mac.Size()
	iterations := (requestedLength + size - 1) / size
	out := make([]byte, 0, iterations*size)

	if _, err := mac.Write(heapSeed); err != nil { // A(1) = HMAC_hash(secret, A(0) = seed)
		return nil, err
	}
	round := mac.Sum(make([]byte, 0, size))
	for i := range iterations {
		mac.Reset()
		if _, err := mac.Write(round); err != nil {
			return nil, err
		}
		if _, err := mac.Write(heapSeed); err != nil {
			return nil, err
		}
		out = mac.Sum(out) // HMAC_hash(secret, A(i) + seed)
		if i+1 < iterations {
			mac.Reset()
			if _, err := mac.Write(round); err != nil {
				return nil, err
			}
			round = mac.Sum(round[:0]) // A(i+1)
		}
	}

	return out[:requestedLength], nil
}

// sha256Code is the code pointer of crypto/sha256.New, which the SHA-256 suites return as their
// HashFunc (lwota patch 22).
var sha256Code = reflect.ValueOf(sha256.New).Pointer() //nolint:gochecknoglobals // a constant the compiler cannot fold

// isSHA256 reports whether hashFunc is crypto/sha256.New itself (lwota patch 22). A func value
// converts to an interface without allocating, and a top-level function's code pointer names it
// alone; a closure around sha256.New is not recognised and takes the generic path. In FIPS 140
// mode the generic path's crypto/hmac (the module's approved HMAC, with its checks) is kept.
func isSHA256(hashFunc HashFunc) bool {
	return hashFunc != nil && !fips140.Enabled() && reflect.ValueOf(hashFunc).Pointer() == sha256Code
}

// hmacSHA256 is HMAC-SHA-256 (RFC 2104) over sha256.Sum256, which allocates nothing for a
// message on the caller's stack (lwota patch 22). crypto/hmac.New allocates its inner and outer
// hashes, both padded keys and, at the first Reset, the marshalled states it restores: about
// nine allocations per P_hash, four P_hashes per handshake and side. Hashing the padded key
// again costs two SHA-256 blocks per HMAC, well under what those allocations cost.
type hmacSHA256 struct {
	ipad, opad [sha256.BlockSize]byte
}

func newHMACSHA256(key []byte) hmacSHA256 {
	var m hmacSHA256
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	copy(m.ipad[:], key)
	copy(m.opad[:], key)
	for i := range m.ipad {
		m.ipad[i] ^= 0x36
		m.opad[i] ^= 0x5c
	}

	return m
}

// sum is HMAC(key, a || b), with buf as scratch space (on the caller's stack when the message
// fits it).
func (m *hmacSHA256) sum(buf, a, b []byte) [sha256.Size]byte {
	buf = append(append(append(buf[:0], m.ipad[:]...), a...), b...)
	inner := sha256.Sum256(buf)
	buf = append(append(buf[:0], m.opad[:]...), inner[:]...)

	return sha256.Sum256(buf)
}

// pHashSHA256 is PHash for SHA-256 with one allocation, the output (lwota patch 22).
func pHashSHA256(secret, seed []byte, requestedLength int) []byte {
	mac := newHMACSHA256(secret)
	var scratch [256]byte // padded key, A(i) and a seed of up to 160 bytes: every TLS 1.2 label's
	out := make([]byte, 0, (requestedLength+sha256.Size-1)/sha256.Size*sha256.Size)
	round := mac.sum(scratch[:], seed, nil) // A(1) = HMAC_hash(secret, A(0) = seed)
	for len(out) < requestedLength {
		block := mac.sum(scratch[:], round[:], seed) // HMAC_hash(secret, A(i) + seed)
		out = append(out, block[:]...)
		if len(out) < requestedLength {
			round = mac.sum(scratch[:], round[:], nil) // A(i+1)
		}
	}

	return out[:requestedLength]
}

// ExtendedMasterSecret generates a Extended MasterSecret as defined in
// https://tools.ietf.org/html/rfc7627
func ExtendedMasterSecret(preMasterSecret, sessionHash []byte, h HashFunc) ([]byte, error) {
	// lwota patch 22: the seed on the stack (PHash does not keep it).
	var buf [96]byte
	seed := append(append(buf[:0], extendedMasterSecretLabel...), sessionHash...)

	return PHash(preMasterSecret, seed, 48, h)
}

// MasterSecret generates a TLS 1.2 MasterSecret.
func MasterSecret(preMasterSecret, clientRandom, serverRandom []byte, h HashFunc) ([]byte, error) {
	var buf [96]byte // lwota patch 22: the seed on the stack (PHash does not keep it)
	seed := append(append(append(buf[:0], masterSecretLabel...), clientRandom...), serverRandom...)

	return PHash(preMasterSecret, seed, 48, h)
}

// GenerateEncryptionKeys is the final step TLS 1.2 PRF. Given all state generated so far generates
// the final keys need for encryption.
func GenerateEncryptionKeys(
	masterSecret, clientRandom, serverRandom []byte,
	macLen, keyLen, ivLen int,
	h HashFunc,
) (*EncryptionKeys, error) {
	var buf [96]byte // lwota patch 22: the seed on the stack (PHash does not keep it)
	seed := append(append(append(buf[:0], keyExpansionLabel...), serverRandom...), clientRandom...)
	keyMaterial, err := PHash(masterSecret, seed, (2*macLen)+(2*keyLen)+(2*ivLen), h)
	if err != nil {
		return nil, err
	}

	clientMACKey := keyMaterial[:macLen]
	keyMaterial = keyMaterial[macLen:]

	serverMACKey := keyMaterial[:macLen]
	keyMaterial = keyMaterial[macLen:]

	clientWriteKey := keyMaterial[:keyLen]
	keyMaterial = keyMaterial[keyLen:]

	serverWriteKey := keyMaterial[:keyLen]
	keyMaterial = keyMaterial[keyLen:]

	clientWriteIV := keyMaterial[:ivLen]
	keyMaterial = keyMaterial[ivLen:]

	serverWriteIV := keyMaterial[:ivLen]

	return &EncryptionKeys{
		MasterSecret:   masterSecret,
		ClientMACKey:   clientMACKey,
		ServerMACKey:   serverMACKey,
		ClientWriteKey: clientWriteKey,
		ServerWriteKey: serverWriteKey,
		ClientWriteIV:  clientWriteIV,
		ServerWriteIV:  serverWriteIV,
	}, nil
}

func prfVerifyData(masterSecret, handshakeBodies []byte, label string, hashFunc HashFunc) ([]byte, error) {
	if isSHA256(hashFunc) {
		// lwota patch 22: the transcript's hash and the seed on the stack.
		sum := sha256.Sum256(handshakeBodies)
		var buf [64]byte
		seed := append(append(buf[:0], label...), sum[:]...)

		return PHash(masterSecret, seed, 12, hashFunc)
	}
	h := hashFunc()
	if _, err := h.Write(handshakeBodies); err != nil {
		return nil, err
	}

	seed := append([]byte(label), h.Sum(nil)...)

	return PHash(masterSecret, seed, 12, hashFunc)
}

// VerifyDataClient is caled on the Client Side to either verify or generate the VerifyData message.
func VerifyDataClient(masterSecret, handshakeBodies []byte, h HashFunc) ([]byte, error) {
	return prfVerifyData(masterSecret, handshakeBodies, verifyDataClientLabel, h)
}

// VerifyDataServer is caled on the Server Side to either verify or generate the VerifyData message.
func VerifyDataServer(masterSecret, handshakeBodies []byte, h HashFunc) ([]byte, error) {
	return prfVerifyData(masterSecret, handshakeBodies, verifyDataServerLabel, h)
}
