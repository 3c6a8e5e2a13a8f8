// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ccm

// lwota patch 14: AES-128-CCM in one pass with AES-NI (ccm_amd64.s). The generic path calls
// cipher.Block.Encrypt, an interface method with checks of its own, once per 16 bytes for the
// CBC-MAC, and builds a cipher.NewCTR stream (a copy of the key schedule, ~512 bytes on the
// heap) for every record longer than shortCTR. The assembly keeps the round keys in registers
// and computes each block's CTR key stream in the latency gaps of the MAC chain. A
// cipher.Block does not show its round keys: that is why NewAESCCM takes the key, not a block.

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
)

// aes128Words is the length of an expanded AES-128 key: 11 round keys of 4 words.
const aes128Words = 44

// NewAESCCM returns AES (key of 16, 24 or 32 bytes) in CCM mode, with tagsize and noncesize as
// for NewCCM. On amd64 with AES-NI, an AES-128 key gets lwota patch 14's assembly, which
// seals and opens a 1 KiB record with about 0.4× the CPU of NewCCM over aes.NewCipher;
// elsewhere it is NewCCM(aes.NewCipher(key), tagsize, noncesize).
func NewAESCCM(key []byte, tagsize, noncesize int) (CCM, error) {
	if len(key) != 16 || !haveAESNI() {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}

		return NewCCM(b, tagsize, noncesize)
	}
	// No cipher.Block: the assembly needs only its own key schedule, and a DTLS session holds
	// two CCMs for as long as it lives.
	c, err := newCCM(tagsize, noncesize)
	if err != nil {
		return nil, err
	}
	expandKeyAES128(&c.xk, key)
	c.aesni = true

	return c, nil
}

// expandKeyAES128 writes the encryption key schedule of FIPS 197 section 5.2 for a 16-byte key
// into xk, each word in memory order (the byte layout AESENC takes its round key in).
func expandKeyAES128(xk *[aes128Words]uint32, key []byte) {
	for i := range 4 {
		xk[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := 4; i < aes128Words; i++ {
		t := xk[i-1]
		if i%4 == 0 {
			// RotWord moves the word's first byte (the lowest here) to its end.
			t = subWord(bits.RotateLeft32(t, -8)) ^ rcon
			rcon <<= 1
			if rcon&0x100 != 0 { // xtime in GF(2^8); rcon is public
				rcon ^= 0x11b
			}
		}
		xk[i] = xk[i-4] ^ t
	}
}

// startAESNI starts the CBC-MAC in mac (B_0 and the additional data), sets s0 to E(A_0), the
// key stream block that encrypts the tag, and returns the counter block of the payload's first
// block, A_1, as the two halves the assembly takes: the first 8 bytes in memory order, the last
// 8 as a big-endian number. It must not hand mac or s0 to c.b (an interface call), or they
// would escape to the heap.
func (c *ccm) startAESNI(mac, s0 *[ccmBlockSize]byte, nonce []byte, plen int, adata []byte) (hi, lo uint64, err error) {
	if err := c.b0(mac, nonce, plen, len(adata)); err != nil {
		return 0, 0, err
	}
	*s0 = [ccmBlockSize]byte{}
	s0[0] = c.L - 1
	copy(s0[1:ccmBlockSize-c.L], nonce)
	hi, lo = binary.LittleEndian.Uint64(s0[:8]), binary.BigEndian.Uint64(s0[8:])+1
	encrypt2AES128(&c.xk, mac, s0) // B_0 and A_0 at once
	if len(adata) == 0 {
		return hi, lo, nil
	}
	var block [ccmBlockSize]byte
	i := adataHead(&block, adata)
	cbcMACAES128(&c.xk, mac, &block[0], 1)
	rest := adata[i:]
	if n := len(rest) / ccmBlockSize; n > 0 {
		cbcMACAES128(&c.xk, mac, &rest[0], n)
		rest = rest[n*ccmBlockSize:]
	}
	if len(rest) > 0 {
		block = [ccmBlockSize]byte{}
		copy(block[:], rest)
		cbcMACAES128(&c.xk, mac, &block[0], 1)
	}

	return hi, lo, nil
}

func (c *ccm) sealAESNI(dst, nonce, plaintext, adata []byte) []byte {
	var mac, s0 [ccmBlockSize]byte
	hi, lo, err := c.startAESNI(&mac, &s0, nonce, len(plaintext), adata)
	if err != nil {
		// The cipher.AEAD interface doesn't allow for an error return.
		panic(err) // nolint
	}
	ret, out := sliceForAppend(dst, len(plaintext)+int(c.M))
	if inexactOverlap(out[:len(plaintext)], plaintext) {
		panic("ccm: invalid buffer overlap")
	}
	n := len(plaintext) / ccmBlockSize
	if n > 0 {
		sealBlocksAES128(&c.xk, &mac, hi, lo, &out[0], &plaintext[0], n)
	}
	if rest := plaintext[n*ccmBlockSize:]; len(rest) > 0 {
		// The MAC takes the last block padded with zeros; its key stream is cut to length.
		var block [ccmBlockSize]byte
		copy(block[:], rest)
		sealBlocksAES128(&c.xk, &mac, hi, lo+uint64(n), &block[0], &block[0], 1) //nolint:gosec // G115
		copy(out[n*ccmBlockSize:], block[:len(rest)])
	}
	subtle.XORBytes(out[len(plaintext):], mac[:c.M], s0[:c.M])

	return ret
}

// openAESNI is Open's patch 14 path, after Open checked the lengths.
func (c *ccm) openAESNI(dst, nonce, ciphertext, adata []byte) ([]byte, error) {
	var tag, mac, s0 [ccmBlockSize]byte
	copy(tag[:], ciphertext[len(ciphertext)-int(c.M):])
	ciphertext = ciphertext[:len(ciphertext)-int(c.M)]

	ret, out := sliceForAppend(dst, len(ciphertext))
	if inexactOverlap(out, ciphertext) {
		// Decrypting would overwrite ciphertext not yet read: decrypt elsewhere first.
		whole := make([]byte, len(ciphertext)+int(c.M))
		copy(whole[copy(whole, ciphertext):], tag[:c.M])
		plaintext, err := c.openAESNI(nil, nonce, whole, adata)
		if err != nil {
			return nil, err
		}

		return append(dst, plaintext...), nil
	}
	hi, lo, err := c.startAESNI(&mac, &s0, nonce, len(ciphertext), adata)
	if err != nil {
		return nil, err
	}
	n := len(ciphertext) / ccmBlockSize
	if n > 0 {
		openBlocksAES128(&c.xk, &mac, hi, lo, &out[0], &ciphertext[0], n)
	}
	if rest := ciphertext[n*ccmBlockSize:]; len(rest) > 0 {
		// The MAC takes the plaintext padded with zeros, not the key stream's tail.
		var ctr, ks, block [ccmBlockSize]byte
		binary.LittleEndian.PutUint64(ctr[:8], hi)
		binary.BigEndian.PutUint64(ctr[8:], lo+uint64(n)) //nolint:gosec // G115
		encryptBlockAES128(&c.xk, &ks, &ctr)
		subtle.XORBytes(block[:len(rest)], rest, ks[:len(rest)])
		copy(out[n*ccmBlockSize:], block[:len(rest)])
		cbcMACAES128(&c.xk, &mac, &block[0], 1)
	}
	subtle.XORBytes(tag[:c.M], tag[:c.M], s0[:c.M])
	if subtle.ConstantTimeCompare(tag[:c.M], mac[:c.M]) != 1 {
		clear(out) // reveal no plaintext that failed authentication

		return nil, errOpen
	}

	return ret, nil
}
