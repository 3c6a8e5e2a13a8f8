// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package prf

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TLS 1.0/1.1 PRF hash, only compared here
	"crypto/sha256"
	"crypto/sha512"
	"hash"
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

// TestPHashSHA256Path: lwota patch 22's HMAC-SHA-256 over sha256.Sum256 gives what crypto/hmac
// gives (sha256.New wrapped in a closure is not recognised and takes crypto/hmac's path), for
// keys longer than SHA-256's block (hashed first) and seeds longer than the stack scratch.
func TestPHashSHA256Path(t *testing.T) {
	if !isSHA256(sha256.New) {
		t.Fatal("sha256.New not recognised")
	}
	wrapped := func() hash.Hash { return sha256.New() }
	for _, h := range []HashFunc{wrapped, sha512.New384, sha1.New, nil} {
		if isSHA256(h) {
			t.Fatal("a hash other than sha256.New taken for it")
		}
	}
	rng := rand.New(rand.NewSource(22)) //nolint:gosec // reproducible inputs
	for _, size := range []struct{ secret, seed int }{{0, 0}, {48, 77}, {64, 32}, {65, 54}, {200, 300}} {
		for _, length := range []int{0, 1, 12, 32, 33, 48, 72, 104, 200} {
			secret := make([]byte, size.secret)
			seed := make([]byte, size.seed)
			rng.Read(secret)
			rng.Read(seed)
			got, err := PHash(secret, seed, length, sha256.New)
			if err != nil {
				t.Fatal(err)
			}
			viaHMAC, err := PHash(secret, seed, length, wrapped)
			if err != nil {
				t.Fatal(err)
			}
			want := referencePHash(secret, seed, length, sha256.New)
			if !bytes.Equal(got, want) || !bytes.Equal(viaHMAC, want) {
				t.Fatalf("secret %d, seed %d, %d bytes: PHash = %x, via crypto/hmac %x, v3.1.15 gives %x",
					size.secret, size.seed, length, got, viaHMAC, want)
			}
		}
	}
}

// TestPRFSHA256Allocations: with SHA-256, each PRF of a handshake allocates its output alone
// (lwota patch 22); with patch 6 alone PHash made 9 allocations and its callers 2 to 3 more.
func TestPRFSHA256Allocations(t *testing.T) {
	pms := bytes.Repeat([]byte{1}, 36)
	master := bytes.Repeat([]byte{2}, 48)
	random := bytes.Repeat([]byte{3}, 32)
	transcript := bytes.Repeat([]byte{4}, 400)
	for _, c := range []struct {
		name string
		max  float64
		prf  func() error
	}{
		{"PHash 48 bytes", 1, func() error { _, err := PHash(master, transcript[:77], 48, sha256.New); return err }},
		{"ExtendedMasterSecret", 1, func() error { _, err := ExtendedMasterSecret(pms, random, sha256.New); return err }},
		{"MasterSecret", 1, func() error { _, err := MasterSecret(pms, random, random, sha256.New); return err }},
		{"VerifyDataServer", 1, func() error { _, err := VerifyDataServer(master, transcript, sha256.New); return err }},
		{"GenerateEncryptionKeys", 2, func() error {
			_, err := GenerateEncryptionKeys(master, random, random, 0, 16, 4, sha256.New)

			return err
		}},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if err := c.prf(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > c.max {
			t.Errorf("%s: %.0f allocations, want at most %.0f", c.name, allocs, c.max)
		}
	}
}
