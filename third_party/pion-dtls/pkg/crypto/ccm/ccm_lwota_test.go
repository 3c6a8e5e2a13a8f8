// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ccm

// Tests of lwota's patch 3 (LWOTA-PATCHES.md): NIST SP 800-38C vectors, the patched CCM against
// the v3.1.15 implementation (ccm_reference_test.go) on random and fuzzed inputs, in-place
// decryption and what a failed Open leaves behind.

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"runtime"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}

	return b
}

// TestNISTSP80038CExamples checks the examples of NIST SP 800-38C Appendix C (C.1 to C.3);
// C.3's 12-byte nonce and 8-byte tag are the shape of DTLS's AES_128_CCM_8.
func TestNISTSP80038CExamples(t *testing.T) {
	key := "404142434445464748494a4b4c4d4e4f"
	cases := []struct {
		name                string
		tagSize             int
		nonce, adata, plain string
		sealed              string
	}{
		{"C.1", 4, "10111213141516", "0001020304050607", "20212223", "7162015b4dac255d"},
		{
			"C.2", 6, "1011121314151617", "000102030405060708090a0b0c0d0e0f",
			"202122232425262728292a2b2c2d2e2f", "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd",
		},
		{
			"C.3", 8, "101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
			"202122232425262728292a2b2c2d2e2f3031323334353637",
			"e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nonce := unhex(t, tc.nonce)
			for _, c := range testCCMs(t, unhex(t, key), tc.tagSize, len(nonce)) { // and patch 14's
				adata, plain, want := unhex(t, tc.adata), unhex(t, tc.plain), unhex(t, tc.sealed)
				if got := c.Seal(nil, nonce, plain, adata); !bytes.Equal(got, want) {
					t.Fatalf("%s: Seal = %x, want %x", c.name, got, want)
				}
				got, err := c.Open(nil, nonce, want, adata)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%s: Open = %x, %v; want %x", c.name, got, err, plain)
				}
			}
		})
	}
}

// checkAgainstReference seals and opens one input with the patched CCM (NewCCM over a
// cipher.Block, and NewAESCCM: patch 14's assembly where it runs) and the v3.1.15 one and fails
// on any difference.
func checkAgainstReference(t *testing.T, key []byte, tagSize, nonceSize int, nonce, adata, plain []byte) {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefCCM(b, tagSize, nonceSize)
	if len(plain) > ref.MaxLength() {
		return
	}
	for _, c := range testCCMs(t, key, tagSize, nonceSize) {
		checkOneAgainstReference(t, c, ref, nonce, adata, plain)
	}
}

func checkOneAgainstReference(t *testing.T, c namedCCM, ref *refCCM, nonce, adata, plain []byte) {
	t.Helper()
	sealed := c.Seal([]byte("prefix"), nonce, plain, adata)
	want := ref.Seal([]byte("prefix"), nonce, plain, adata)
	if !bytes.Equal(sealed, want) {
		t.Fatalf("%s: tag %d nonce %d adata %d plain %d: Seal = %x, reference %x",
			c.name, ref.M, len(nonce), len(adata), len(plain), sealed, want)
	}
	ct := sealed[len("prefix"):]
	opened, err := c.Open([]byte("x"), nonce, ct, adata)
	if err != nil || !bytes.Equal(opened, append([]byte("x"), plain...)) {
		t.Fatalf("%s: Open = %x, %v; want x and %x", c.name, opened, err, plain)
	}
	// In place, as pion's record layer decrypts and seals.
	inPlace := bytes.Clone(ct)
	opened, err = c.Open(inPlace[:0], nonce, inPlace, adata)
	if err != nil || !bytes.Equal(opened, plain) {
		t.Fatalf("%s: Open in place = %x, %v; want %x", c.name, opened, err, plain)
	}
	inPlace = append(inPlace[:0], plain...)
	if got := c.Seal(inPlace[:0], nonce, inPlace, adata); !bytes.Equal(got, ct) {
		t.Fatalf("%s: Seal in place = %x, want %x", c.name, got, ct)
	}
	// A flipped bit anywhere fails both the same way.
	if len(ct) > 0 {
		bad := bytes.Clone(ct)
		bad[int(nonce[0])%len(bad)] ^= 0x40
		_, err := c.Open(nil, nonce, bad, adata)
		_, refErr := ref.Open(nil, nonce, bytes.Clone(bad), adata)
		if err == nil || refErr == nil || err.Error() != refErr.Error() {
			t.Fatalf("%s: tampered Open: %v, reference %v", c.name, err, refErr)
		}
	}
}

func TestMatchesReference(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2)) //nolint:gosec // test inputs
	buf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}

		return b
	}
	lengths := []int{0, 1, 15, 16, 17, 31, 32, 33, 48, 100, 255, 256, 257, 1024, 1024 + 13, 4000, 4096 + 17} // 256: shortCTR (patch 12)
	for _, tagSize := range []int{4, 6, 8, 10, 12, 14, 16} {
		for nonceSize := 7; nonceSize <= 13; nonceSize++ {
			for _, pl := range lengths {
				for _, al := range []int{0, 1, 13, 14, 15, 16, 17, 40} {
					checkAgainstReference(t, buf(16), tagSize, nonceSize, buf(nonceSize), buf(al), buf(pl))
				}
			}
		}
	}
}

// FuzzMatchesReference cross-checks the patched CCM against the v3.1.15 implementation.
func FuzzMatchesReference(f *testing.F) {
	f.Add(make([]byte, 16), uint8(8), uint8(12), []byte("adata13bytes!"), []byte("a CoAP block"))
	f.Add(bytes.Repeat([]byte{0xc0}, 16), uint8(16), uint8(7), []byte{}, bytes.Repeat([]byte{1}, 1024))
	f.Fuzz(func(t *testing.T, key []byte, tagSize, nonceSize uint8, adata, plain []byte) {
		if len(key) != 16 {
			return
		}
		ts := 4 + 2*int(tagSize%7)
		ns := 7 + int(nonceSize%7)
		nonce := bytes.Repeat([]byte{tagSize ^ nonceSize}, ns)
		checkAgainstReference(t, key, ts, ns, nonce, adata, plain)
	})
}

// TestOpenFailureRevealsNothing: an Open that fails authentication returns no plaintext, and
// when it decrypted in place (dst aliasing the ciphertext), the buffer holds zeros, not the
// plaintext of the forgery.
func TestOpenFailureRevealsNothing(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(b, 8, 12)
	nonce := make([]byte, 12)
	plain := bytes.Repeat([]byte("secret"), 50)
	ct := c.Seal(nil, nonce, plain, nil)
	ct[len(ct)-1] ^= 1 // a bad tag
	out, err := c.Open(ct[:0], nonce, ct, nil)
	if err == nil || out != nil {
		t.Fatalf("Open = %x, %v; want an error", out, err)
	}
	if !bytes.Equal(ct[:len(plain)], make([]byte, len(plain))) {
		t.Fatalf("the buffer holds %x after a failed in-place Open, want zeros", ct[:len(plain)])
	}
	dst := make([]byte, 0, 1024)
	if out, err := c.Open(dst, nonce, ct, nil); err == nil || out != nil {
		t.Fatalf("Open = %x, %v; want an error", out, err)
	}
	if bytes.Contains(dst[:cap(dst)], []byte("secret")) {
		t.Fatal("a failed Open left plaintext in dst's spare capacity")
	}
}

// TestOpenInexactOverlap: dst overlapping the ciphertext at another offset still decrypts
// correctly (the patched Open then decrypts elsewhere first).
func TestOpenInexactOverlap(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(b, 8, 12)
	nonce := make([]byte, 12)
	plain := make([]byte, 100)
	_, _ = rand.Read(plain)
	buf := make([]byte, 8+len(plain)+8)
	copy(buf[8:], c.Seal(nil, nonce, plain, nil))
	out, err := c.Open(buf[:0], nonce, buf[8:], nil) // dst starts 8 bytes before the ciphertext
	if err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("Open = %x, %v; want %x", out, err, plain)
	}
}

// TestOpenAllocations: decrypting in place allocates no plaintext buffer (v3.1.15 allocated one
// per record, and a tag).
func TestOpenAllocations(t *testing.T) {
	b, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(b, 8, 12)
	nonce := make([]byte, 12)
	ct := c.Seal(nil, nonce, make([]byte, 1024), nil)
	work := make([]byte, len(ct))
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		copy(work, ct)
		if _, err := c.Open(work[:0], nonce, work, nil); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := (after.TotalAlloc - before.TotalAlloc) / runs; n >= 1024 {
		t.Fatalf("Open in place allocates %d bytes per 1 KiB record, want less than the record", n)
	}
}

func benchmarkCCM(b *testing.B, c interface {
	Seal(dst, nonce, plaintext, adata []byte) []byte
	Open(dst, nonce, ciphertext, adata []byte) ([]byte, error)
}, open bool,
) {
	b.Helper()
	benchmarkCCMSize(b, c, open, 1024)
}

func benchmarkCCMSize(b *testing.B, c interface {
	Seal(dst, nonce, plaintext, adata []byte) []byte
	Open(dst, nonce, ciphertext, adata []byte) ([]byte, error)
}, open bool, size int,
) {
	b.Helper()
	nonce, adata, plain := make([]byte, 12), make([]byte, 13), make([]byte, size)
	ct := c.Seal(nil, nonce, plain, adata)
	work := make([]byte, len(ct))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if open {
			copy(work, ct)
			if _, err := c.Open(work[:0], nonce, work, adata); err != nil {
				b.Fatal(err)
			}
		} else {
			c.Seal(work[:0], nonce, plain, adata)
		}
	}
	if cpu := processCPU() - cpu; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op") // lwota patch 14
	}
}

// BenchmarkCCM8 compares the patched CCM with v3.1.15's on a 1 KiB record, as DTLS uses it.
func BenchmarkCCM8(b *testing.B) {
	blk, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(blk, 8, 12)
	ref := newRefCCM(blk, 8, 12)
	b.Run("seal/patched", func(b *testing.B) { benchmarkCCM(b, c, false) })
	b.Run("seal/v3.1.15", func(b *testing.B) { benchmarkCCM(b, ref, false) })
	b.Run("open/patched", func(b *testing.B) { benchmarkCCM(b, c, true) })
	b.Run("open/v3.1.15", func(b *testing.B) { benchmarkCCM(b, ref, true) })
}
