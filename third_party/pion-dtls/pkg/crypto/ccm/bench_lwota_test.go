package ccm

import (
	"crypto/aes"
	"testing"
)

func BenchmarkSeal1K(b *testing.B) {
	blk, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(blk, 8, 12)
	pt := make([]byte, 1024)
	ad := make([]byte, 13)
	nonce := make([]byte, 12)
	dst := make([]byte, 0, 2048)
	b.SetBytes(1024)
	for b.Loop() {
		c.Seal(dst[:0], nonce, pt, ad)
	}
}

func BenchmarkOpen1K(b *testing.B) {
	blk, _ := aes.NewCipher(make([]byte, 16))
	c, _ := NewCCM(blk, 8, 12)
	pt := make([]byte, 1024)
	ad := make([]byte, 13)
	nonce := make([]byte, 12)
	ct := c.Seal(nil, nonce, pt, ad)
	dst := make([]byte, 0, 2048)
	b.SetBytes(1024)
	for b.Loop() {
		if _, err := c.Open(dst[:0], nonce, ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}
