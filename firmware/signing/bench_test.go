package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

const (
	benchImage = 8 << 20  // bytes verified per iteration
	benchChunk = 32 << 10 // bytes per Write, as an upload arrives
)

var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, benchImage)
	rand.NewChaCha8([32]byte{5}).Read(b)
	return b
})

func writeAll(w interface{ Write([]byte) (int, error) }, data []byte) {
	for off := 0; off < len(data); off += benchChunk {
		w.Write(data[off:min(off+benchChunk, len(data))])
	}
}

// sha256MBps is the baseline: plain SHA-256 over the same bytes in the same chunks, measured
// once per run on this machine (for at least half a second). testing.Benchmark cannot be used
// from inside a benchmark: it would wait on the lock the running benchmark holds.
var sha256MBps = sync.OnceValue(func() float64 {
	data := benchData()
	start, n := time.Now(), 0
	for ; n < 3 || time.Since(start) < 500*time.Millisecond; n++ {
		h := sha256.New()
		writeAll(h, data)
		h.Sum(nil)
	}
	return float64(n) * float64(len(data)) / time.Since(start).Seconds() / 1e6
})

func benchSHA256(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h := sha256.New()
		writeAll(h, data)
		h.Sum(nil)
	}
}

func BenchmarkSHA256Baseline(b *testing.B) { benchSHA256(b) }

// BenchmarkVerify reports MB/s and "x-sha256": throughput relative to plain SHA-256.
func BenchmarkVerify(b *testing.B) {
	data := benchData()
	edPriv, ecPriv, keys := fuzzKeys(b)
	edSig := ed25519.Sign(edPriv, data)
	sum := sha256.Sum256(data)
	ecSig, err := ecdsa.SignASN1(crand.Reader, ecPriv, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	extra := func(n int) []*Key { // more trusted Ed25519 keys: more SHA-512 states to feed
		out := []*Key{keys[0]}
		for i := range n {
			var seed [32]byte
			seed[0] = byte(i + 1)
			out = append(out, goKey(b, "extra", ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)))
		}
		return out
	}
	cases := []struct {
		name string
		sig  []byte
		keys []*Key
	}{
		{"ed25519-1key", edSig, keys},
		{"ed25519-3keys", edSig, extra(2)},
		{"ecdsa-p256", ecSig, keys},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				v, err := NewVerifier(c.sig, c.keys)
				if err != nil {
					b.Fatal(err)
				}
				writeAll(v, data)
				if _, err := v.Verify(); err != nil {
					b.Fatal(err)
				}
			}
			mbps := float64(len(data)) * float64(b.N) / b.Elapsed().Seconds() / 1e6
			b.ReportMetric(mbps/sha256MBps(), "x-sha256")
		})
	}
}
