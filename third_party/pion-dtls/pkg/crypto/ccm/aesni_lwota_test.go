// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ccm

// Tests of lwota's patch 14 (LWOTA-PATCHES.md): NewAESCCM and its AES-NI assembly against the
// v3.1.15 implementation (ccm_reference_test.go) around every block boundary up to 2 KiB, its
// key schedule against crypto/aes, tampering, allocations, and the benchmarks that compare it
// with the generic path (patch 12) and v3.1.15 in the same run.

import (
	"bytes"
	"crypto/aes"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// namedCCM is a CCM under test and the constructor that made it.
type namedCCM struct {
	CCM
	name string
}

// testCCMs returns the CCMs for one key and parameters: NewCCM over aes.NewCipher (the generic
// path) and NewAESCCM (patch 14's assembly where it runs).
func testCCMs(t testing.TB, key []byte, tagSize, nonceSize int) []namedCCM {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	generic, err := NewCCM(b, tagSize, nonceSize)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := NewAESCCM(key, tagSize, nonceSize)
	if err != nil {
		t.Fatal(err)
	}

	return []namedCCM{{generic, "NewCCM"}, {fast, "NewAESCCM"}}
}

// TestNewAESCCMUsesAESNI: on a machine with AES-NI an AES-128 CCM takes the assembly; other key
// sizes, and machines without it, the generic path. The other tests compare the two paths'
// output, so they would pass on the generic path alone: this one does not.
func TestNewAESCCMUsesAESNI(t *testing.T) {
	for _, keyLen := range []int{16, 24, 32} {
		c, err := NewAESCCM(make([]byte, keyLen), 8, 12)
		if err != nil {
			t.Fatal(err)
		}
		want := keyLen == 16 && haveAESNI()
		cc, _ := c.(*ccm)
		if cc.aesni != want {
			t.Errorf("%d-byte key: AES-NI path %v, want %v", keyLen, cc.aesni, want)
		}
		if want && cc.b != nil {
			t.Errorf("%d-byte key: the AES-NI path holds a cipher.Block it never uses", keyLen)
		}
	}
	if _, err := NewAESCCM(make([]byte, 15), 8, 12); err == nil {
		t.Error("NewAESCCM took a 15-byte key")
	}
	if _, err := NewAESCCM(make([]byte, 16), 7, 12); err == nil {
		t.Error("NewAESCCM took a 7-byte tag")
	}
}

// TestAESNIKeySchedule: patch 14's key expansion and block encryption equal crypto/aes's.
func TestAESNIKeySchedule(t *testing.T) {
	if !haveAESNI() {
		t.Skip("no AES-NI")
	}
	rng := mrand.New(mrand.NewPCG(3, 4)) //nolint:gosec // test inputs
	for range 200 {
		key := make([]byte, 16)
		var in, got, want [ccmBlockSize]byte
		for i := range key {
			key[i] = byte(rng.Uint32())
			in[i] = byte(rng.Uint32())
		}
		var xk [aes128Words]uint32
		expandKeyAES128(&xk, key)
		encryptBlockAES128(&xk, &got, &in)
		b, _ := aes.NewCipher(key)
		b.Encrypt(want[:], in[:])
		if got != want {
			t.Fatalf("key %x: E(%x) = %x, crypto/aes %x", key, in, got, want)
		}
	}
}

// TestAESNIMatchesReference: every length around the block boundaries up to 2 KiB, with and
// without additional data, tag sizes 8 and 16 and nonce sizes 7, 12 (DTLS) and 13, seals with
// NewAESCCM to the reference's bytes and opens back, in place and not; some lengths with every
// tag and nonce size. (TestMatchesReference covers NewCCM's generic path.)
func TestAESNIMatchesReference(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(5, 6)) //nolint:gosec // test inputs
	buf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}

		return b
	}
	check := func(tagSize, nonceSize, adataLen, n int) {
		key, nonce := buf(16), buf(nonceSize)
		c, err := NewAESCCM(key, tagSize, nonceSize)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := aes.NewCipher(key)
		checkOneAgainstReference(t, namedCCM{c, "NewAESCCM"}, newRefCCM(b, tagSize, nonceSize), nonce, buf(adataLen), buf(n))
	}
	for k := 0; k <= 2048/ccmBlockSize; k++ {
		for _, d := range []int{-1, 0, 1, 7} {
			n := k*ccmBlockSize + d
			if n < 0 || n > 2048 {
				continue
			}
			for _, tagSize := range []int{8, 16} {
				for _, nonceSize := range []int{7, 12, 13} {
					for _, al := range []int{0, 13, 31} {
						check(tagSize, nonceSize, al, n)
					}
				}
			}
		}
	}
	for _, n := range []int{0, 1, 16, 17, 1024, 1037} {
		for _, tagSize := range []int{4, 6, 8, 10, 12, 14, 16} {
			for nonceSize := 7; nonceSize <= 13; nonceSize++ {
				for _, al := range []int{0, 1, 14, 15, 16, 40} {
					check(tagSize, nonceSize, al, n)
				}
			}
		}
	}
}

// TestAESNITamperedFails: a flipped bit in the ciphertext, the tag, the nonce or the additional
// data fails Open, with nothing of the plaintext in dst, in place or not.
func TestAESNITamperedFails(t *testing.T) {
	key, nonce, adata := []byte("0123456789abcdef"), []byte("twelve bytes"), []byte("thirteen byte")
	plain := bytes.Repeat([]byte("firmware"), 1037/8) // 1 KiB and a partial block
	for _, c := range testCCMs(t, key, 8, 12) {
		ct := c.Seal(nil, nonce, plain, adata)
		for _, tc := range []struct {
			name      string
			at        int // bit flipped in ct, or -1
			n, a      []byte
			inPlace   bool
			wantPlain bool
		}{
			{name: "untouched", at: -1, n: nonce, a: adata, wantPlain: true},
			{name: "first block", at: 0, n: nonce, a: adata},
			{name: "last full block", at: len(plain)/16*16 - 1, n: nonce, a: adata, inPlace: true},
			{name: "partial block", at: len(plain) - 1, n: nonce, a: adata},
			{name: "tag", at: len(ct) - 1, n: nonce, a: adata, inPlace: true},
			{name: "nonce", at: -1, n: []byte("twelve bytez"), a: adata},
			{name: "adata", at: -1, n: nonce, a: []byte("thirteen bytd")},
		} {
			t.Run(fmt.Sprintf("%s/%s", c.name, tc.name), func(t *testing.T) {
				work := make([]byte, len(ct), len(ct)+64)
				copy(work, ct)
				if tc.at >= 0 {
					work[tc.at] ^= 0x80
				}
				var dst []byte
				if !tc.inPlace {
					dst = make([]byte, 0, len(ct)+64)
				}
				if tc.inPlace {
					dst = work[:0]
				}
				out, err := c.Open(dst, tc.n, work, tc.a)
				if tc.wantPlain {
					if err != nil || !bytes.Equal(out, plain) {
						t.Fatalf("Open = %v, want the plaintext", err)
					}

					return
				}
				if err == nil || out != nil {
					t.Fatalf("Open = %d bytes, %v; want an error", len(out), err)
				}
				if bytes.Contains(dst[:cap(dst)], []byte("firmware")) {
					t.Fatal("a failed Open left plaintext in dst")
				}
			})
		}
	}
}

// TestAESNIAllocations: sealing and opening in place allocate nothing at any length, without
// the pool of patch 12 (so this holds under the race detector too); the generic path allocates
// cipher.NewCTR's stream for a 1 KiB record.
func TestAESNIAllocations(t *testing.T) {
	if !haveAESNI() {
		t.Skip("no AES-NI")
	}
	c, _ := NewAESCCM(make([]byte, 16), 8, 12)
	nonce, adata := make([]byte, 12), make([]byte, 13)
	for _, size := range []int{0, 48, 256, 1024, 1037} {
		plain := make([]byte, size)
		work := make([]byte, size+c.Overhead())
		ct := c.Seal(nil, nonce, plain, adata)
		seal := testing.AllocsPerRun(200, func() { c.Seal(work[:0], nonce, plain, adata) })
		open := testing.AllocsPerRun(200, func() {
			copy(work, ct)
			if _, err := c.Open(work[:0], nonce, work, adata); err != nil {
				t.Fatal(err)
			}
		})
		if seal != 0 || open != 0 {
			t.Errorf("%d-byte record: Seal %v and Open %v allocations, want none", size, seal, open)
		}
	}
}

// benchmarkCCMs are the three implementations a benchmark compares in one run: patch 14
// (NewAESCCM), the generic path of patches 3 and 12 (NewCCM), and v3.1.15.
func benchmarkCCMs(b *testing.B) []struct {
	name string
	c    interface {
		Seal(dst, nonce, plaintext, adata []byte) []byte
		Open(dst, nonce, ciphertext, adata []byte) ([]byte, error)
	}
} {
	b.Helper()
	key := make([]byte, 16)
	blk, _ := aes.NewCipher(key)
	generic, _ := NewCCM(blk, 8, 12)
	fast, _ := NewAESCCM(key, 8, 12)

	return []struct {
		name string
		c    interface {
			Seal(dst, nonce, plaintext, adata []byte) []byte
			Open(dst, nonce, ciphertext, adata []byte) ([]byte, error)
		}
	}{{"aesni", fast}, {"generic", generic}, {"v3.1.15", newRefCCM(blk, 8, 12)}}
}

// BenchmarkSeal1K seals a 1 KiB record with AES-128-CCM-8 and DTLS's 13 bytes of additional
// data, as a Block2 answer: patch 14 beside the generic path and v3.1.15.
func BenchmarkSeal1K(b *testing.B) {
	for _, impl := range benchmarkCCMs(b) {
		b.Run(impl.name, func(b *testing.B) { benchmarkCCMSize(b, impl.c, false, 1024) })
	}
}

// BenchmarkOpen1K opens a 1 KiB record in place, as BenchmarkSeal1K seals it.
func BenchmarkOpen1K(b *testing.B) {
	for _, impl := range benchmarkCCMs(b) {
		b.Run(impl.name, func(b *testing.B) { benchmarkCCMSize(b, impl.c, true, 1024) })
	}
}

// BenchmarkSeal48 seals a 48-byte record (a CoAP Block2 request) as BenchmarkSeal1K does.
func BenchmarkSeal48(b *testing.B) {
	for _, impl := range benchmarkCCMs(b) {
		b.Run(impl.name, func(b *testing.B) { benchmarkCCMSize(b, impl.c, false, 48) })
	}
}

// BenchmarkOpen48 opens a 48-byte record in place.
func BenchmarkOpen48(b *testing.B) {
	for _, impl := range benchmarkCCMs(b) {
		b.Run(impl.name, func(b *testing.B) { benchmarkCCMSize(b, impl.c, true, 48) })
	}
}
