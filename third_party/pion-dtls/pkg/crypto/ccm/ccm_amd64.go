// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

//go:build amd64 && !purego

package ccm

import "golang.org/x/sys/cpu"

// haveAESNI reports whether the assembly of lwota patch 14 (ccm_amd64.s) can run here.
func haveAESNI() bool { return cpu.X86.HasAES }

// subWord applies the AES S-box to each byte of w (key expansion).
func subWord(w uint32) uint32

// encryptBlockAES128 encrypts one block with the expanded AES-128 key xk.
//
//go:noescape
func encryptBlockAES128(xk *[aes128Words]uint32, dst, src *[ccmBlockSize]byte)

// encrypt2AES128 encrypts the blocks a and b in place, in parallel.
//
//go:noescape
func encrypt2AES128(xk *[aes128Words]uint32, a, b *[ccmBlockSize]byte)

// cbcMACAES128 runs the CBC-MAC over blocks full blocks from src.
//
//go:noescape
func cbcMACAES128(xk *[aes128Words]uint32, mac *[ccmBlockSize]byte, src *byte, blocks int)

// sealBlocksAES128 MACs blocks full plaintext blocks from src and writes them encrypted to dst,
// with the counter blocks ctrHi (the first 8 bytes, in memory order) || ctrLo (big-endian),
// ctrLo+1, ...; dst and src alias exactly or not at all.
//
//go:noescape
func sealBlocksAES128(xk *[aes128Words]uint32, mac *[ccmBlockSize]byte, ctrHi, ctrLo uint64, dst, src *byte, blocks int)

// openBlocksAES128 decrypts blocks full blocks from src into dst and MACs the plaintext; the
// counter blocks as in sealBlocksAES128.
//
//go:noescape
func openBlocksAES128(xk *[aes128Words]uint32, mac *[ccmBlockSize]byte, ctrHi, ctrLo uint64, dst, src *byte, blocks int)
