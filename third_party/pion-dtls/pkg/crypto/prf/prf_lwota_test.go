// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package prf

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TLS 1.0/1.1 PRF hash, only compared here
	"crypto/sha256"
	"crypto/sha512"
	"math/rand"
	"testing"
)

// referencePHash is PHash as v3.1.15 wrote it (a new HMAC for every step), kept to check
// lwota patch 6 against.
func referencePHash(secret, seed []byte, requestedLength int, hashFunc HashFunc) []byte {
	hmacOf := func(key, data []byte) []byte {
		mac := hmac.New(hashFunc, key)
		mac.Write(data) //nolint:errcheck // hash.Hash.Write never fails

		return mac.Sum(nil)
	}
	lastRound := seed
	out := []byte{}
	size := hashFunc().Size()
	for range (requestedLength + size - 1) / size {
		lastRound = hmacOf(secret, lastRound)
		out = append(out, hmacOf(secret, append(append([]byte{}, lastRound...), seed...))...)
	}

	return out[:requestedLength]
}

func TestPHashMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(6)) //nolint:gosec // reproducible inputs
	hashes := map[string]HashFunc{"sha1": sha1.New, "sha256": sha256.New, "sha384": sha512.New384}
	for name, h := range hashes {
		for length := 0; length <= 200; length++ {
			secret := make([]byte, rng.Intn(200))
			seed := make([]byte, rng.Intn(100))
			rng.Read(secret)
			rng.Read(seed)
			got, err := PHash(secret, seed, length, h)
			if err != nil {
				t.Fatal(err)
			}
			if want := referencePHash(secret, seed, length, h); !bytes.Equal(got, want) {
				t.Fatalf("%s, %d bytes: PHash = %x, v3.1.15 gives %x", name, length, got, want)
			}
		}
	}
}

// TestPHashAllocations: one HMAC per PHash (lwota patch 6), so the allocations do not grow with
// the length. v3.1.15 built two HMACs per iteration: 15, 29 and 43 allocations for 12
// (Finished), 48 (master secret) and 72 bytes of SHA-256; the patched PHash makes 9 for each.
func TestPHashAllocations(t *testing.T) {
	secret := bytes.Repeat([]byte{1}, 48)
	seed := bytes.Repeat([]byte{2}, 77)
	for _, length := range []int{12, 48, 72} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := PHash(secret, seed, length, sha256.New); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 10 {
			t.Errorf("PHash of %d bytes: %.0f allocations, want at most 10", length, allocs)
		}
	}
}

func BenchmarkMasterSecret(b *testing.B) {
	pms := bytes.Repeat([]byte{1}, 36)
	random := bytes.Repeat([]byte{2}, 32)
	b.ReportAllocs()
	for range b.N {
		if _, err := MasterSecret(pms, random, random, sha256.New); err != nil {
			b.Fatal(err)
		}
	}
}
