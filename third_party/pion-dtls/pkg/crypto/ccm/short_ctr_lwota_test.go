// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package ccm

// Tests of lwota's patch 12 (LWOTA-PATCHES.md): CCM's working memory from a pool, and the CTR
// key stream of a short record without cipher.NewCTR. TestMatchesReference covers the output
// on both sides of shortCTR (255, 256 and 257 bytes).

import (
	"crypto/aes"
	"testing"
)

// TestCCMAllocations: sealing and opening (in place) a record as short as a CoAP request's
// allocates nothing, and a 1 KiB record only cipher.NewCTR's stream. v3.1.15 and patch 3
// allocated the stream and three 16-byte arrays (tag, S_0, counter block) per record.
func TestCCMAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	b, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(b, 8, 12)
	nonce, adata := make([]byte, 12), make([]byte, 13)
	for _, tc := range []struct {
		size      int
		maxAllocs float64
	}{
		{48, 0},   // a CoAP Block2 request
		{256, 0},  // shortCTR
		{1024, 1}, // a 1 KiB block: cipher.NewCTR's stream
	} {
		plain := make([]byte, tc.size)
		work := make([]byte, tc.size+c.Overhead())
		ct := c.Seal(nil, nonce, plain, adata)
		seal := testing.AllocsPerRun(200, func() { c.Seal(work[:0], nonce, plain, adata) })
		open := testing.AllocsPerRun(200, func() {
			copy(work, ct)
			if _, err := c.Open(work[:0], nonce, work, adata); err != nil {
				t.Fatal(err)
			}
		})
		if seal > tc.maxAllocs || open > tc.maxAllocs {
			t.Errorf("%d-byte record: Seal %v and Open %v allocations, want at most %v", tc.size, seal, open, tc.maxAllocs)
		}
	}
}

// BenchmarkCCM8Short compares the patched CCM with v3.1.15's on a 48-byte record (a CoAP
// Block2 request), as DTLS uses it.
func BenchmarkCCM8Short(b *testing.B) {
	blk, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(blk, 8, 12)
	ref := newRefCCM(blk, 8, 12)
	b.Run("seal/patched", func(b *testing.B) { benchmarkCCMSize(b, c, false, 48) })
	b.Run("seal/v3.1.15", func(b *testing.B) { benchmarkCCMSize(b, ref, false, 48) })
	b.Run("open/patched", func(b *testing.B) { benchmarkCCMSize(b, c, true, 48) })
	b.Run("open/v3.1.15", func(b *testing.B) { benchmarkCCMSize(b, ref, true, 48) })
}
