// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ccm

// The CCM implementation of pion/dtls v3.1.15, before lwota's patch 3, kept as the reference the
// patched one is checked against (ccm_lwota_test.go).

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
)

// ccm represents a Counter with CBC-MAC with a specific key.
type refCCM struct {
	b cipher.Block
	M uint8
	L uint8
}

func newRefCCM(b cipher.Block, tagsize, noncesize int) *refCCM {
	return &refCCM{b: b, M: uint8(tagsize), L: uint8(15 - noncesize)} //nolint:gosec // test only
}

func (c *refCCM) NonceSize() int { return 15 - int(c.L) }
func (c *refCCM) Overhead() int  { return int(c.M) }
func (c *refCCM) MaxLength() int { return maxlen(c.L, c.Overhead()) }

func (c *refCCM) cbcRound(mac, data []byte) {
	for i := range ccmBlockSize {
		mac[i] ^= data[i]
	}
	c.b.Encrypt(mac, mac)
}

func (c *refCCM) cbcData(mac, data []byte) {
	for len(data) >= ccmBlockSize {
		c.cbcRound(mac, data[:ccmBlockSize])
		data = data[ccmBlockSize:]
	}
	if len(data) > 0 {
		var block [ccmBlockSize]byte
		copy(block[:], data)
		c.cbcRound(mac, block[:])
	}
}

func (c *refCCM) tag(nonce, plaintext, adata []byte) ([]byte, error) {
	var mac [ccmBlockSize]byte

	if len(adata) > 0 {
		mac[0] |= 1 << 6
	}
	mac[0] |= (c.M - 2) << 2
	mac[0] |= c.L - 1
	if len(nonce) != c.NonceSize() {
		return nil, errInvalidNonceSize
	}
	if len(plaintext) > c.MaxLength() {
		return nil, errPlaintextTooLong
	}
	binary.BigEndian.PutUint64(mac[ccmBlockSize-8:], uint64(len(plaintext)))
	copy(mac[1:ccmBlockSize-c.L], nonce)
	c.b.Encrypt(mac[:], mac[:])

	var block [ccmBlockSize]byte
	if adataLength := uint64(len(adata)); adataLength > 0 { //nolint:nestif
		// First adata block includes adata length
		// RFC 3610 section 2.2, NIST SP 800-38C A.2.2: lengths of 0xff00 and
		// above are marked with 0xff 0xfe (4-byte length) or 0xff 0xff
		// (8-byte length).
		i := 2
		switch {
		case adataLength <= 0xfeff:
			binary.BigEndian.PutUint16(block[:i], uint16(adataLength))
		case adataLength < uint64(1<<32):
			binary.BigEndian.PutUint16(block[0:2], 0xfffe)
			i = 2 + 4
			binary.BigEndian.PutUint32(block[2:i], uint32(adataLength)) //nolint:gosec // G115
		default:
			binary.BigEndian.PutUint16(block[0:2], 0xffff)
			i = 2 + 8
			binary.BigEndian.PutUint64(block[2:i], adataLength)
		}
		i = copy(block[i:], adata)
		c.cbcRound(mac[:], block[:])
		c.cbcData(mac[:], adata[i:])
	}

	if len(plaintext) > 0 {
		c.cbcData(mac[:], plaintext)
	}

	return mac[:c.M], nil
}

// Seal encrypts and authenticates plaintext, authenticates the
// additional data and appends the result to dst, returning the updated
// slice. The nonce must be NonceSize() bytes long and unique for all
// time, for a given key.
// The plaintext must be no longer than MaxLength() bytes long.
//
// The plaintext and dst may alias exactly or not at all.
func (c *refCCM) Seal(dst, nonce, plaintext, adata []byte) []byte {
	tag, err := c.tag(nonce, plaintext, adata)
	if err != nil {
		// The cipher.AEAD interface doesn't allow for an error return.
		panic(err) // nolint
	}

	var iv, s0 [ccmBlockSize]byte
	iv[0] = c.L - 1
	copy(iv[1:ccmBlockSize-c.L], nonce)
	c.b.Encrypt(s0[:], iv[:])
	for i := 0; i < int(c.M); i++ {
		tag[i] ^= s0[i]
	}
	iv[len(iv)-1] |= 1
	stream := cipher.NewCTR(c.b, iv[:])
	ret, out := sliceForAppend(dst, len(plaintext)+int(c.M))
	stream.XORKeyStream(out, plaintext)
	copy(out[len(plaintext):], tag)

	return ret
}

func (c *refCCM) Open(dst, nonce, ciphertext, adata []byte) ([]byte, error) {
	if len(ciphertext) < int(c.M) {
		return nil, errCiphertextTooShort
	}
	if len(ciphertext) > c.MaxLength()+c.Overhead() {
		return nil, errCiphertextTooLong
	}

	tag := make([]byte, int(c.M))
	copy(tag, ciphertext[len(ciphertext)-int(c.M):])
	ciphertextWithoutTag := ciphertext[:len(ciphertext)-int(c.M)]

	var iv, s0 [ccmBlockSize]byte
	iv[0] = c.L - 1
	copy(iv[1:ccmBlockSize-c.L], nonce)
	c.b.Encrypt(s0[:], iv[:])
	for i := 0; i < int(c.M); i++ {
		tag[i] ^= s0[i]
	}
	iv[len(iv)-1] |= 1
	stream := cipher.NewCTR(c.b, iv[:])

	// Cannot decrypt directly to dst since we're not supposed to
	// reveal the plaintext to the caller if authentication fails.
	plaintext := make([]byte, len(ciphertextWithoutTag))
	stream.XORKeyStream(plaintext, ciphertextWithoutTag)
	expectedTag, err := c.tag(nonce, plaintext, adata)
	if err != nil {
		return nil, err
	}

	if subtle.ConstantTimeCompare(tag, expectedTag) != 1 {
		return nil, errOpen
	}

	return append(dst, plaintext...), nil
}
