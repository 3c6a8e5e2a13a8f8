// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

//go:build !amd64 || purego

package ccm

// Without the assembly of lwota patch 14 every CCM takes the generic path; the functions below
// are never called.

func haveAESNI() bool { return false }

func subWord(uint32) uint32 { panic("ccm: no AES-NI") }

func encryptBlockAES128(*[aes128Words]uint32, *[ccmBlockSize]byte, *[ccmBlockSize]byte) {
	panic("ccm: no AES-NI")
}

func encrypt2AES128(*[aes128Words]uint32, *[ccmBlockSize]byte, *[ccmBlockSize]byte) {
	panic("ccm: no AES-NI")
}

func cbcMACAES128(*[aes128Words]uint32, *[ccmBlockSize]byte, *byte, int) { panic("ccm: no AES-NI") }

func sealBlocksAES128(*[aes128Words]uint32, *[ccmBlockSize]byte, uint64, uint64, *byte, *byte, int) {
	panic("ccm: no AES-NI")
}

func openBlocksAES128(*[aes128Words]uint32, *[ccmBlockSize]byte, uint64, uint64, *byte, *byte, int) {
	panic("ccm: no AES-NI")
}
