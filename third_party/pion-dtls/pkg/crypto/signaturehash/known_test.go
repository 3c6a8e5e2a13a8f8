// SPDX-FileCopyrightText: 2023 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package signaturehash

import (
	"crypto/tls"
	"testing"

	"github.com/pion/dtls/v3/pkg/crypto/hash"
	"github.com/pion/dtls/v3/pkg/crypto/signature"
)

// lwota patch 5: the switches answer exactly what the maps hold, for every value.
func TestKnownMatchesAlgorithms(t *testing.T) {
	sigs, hashes := signature.Algorithms(), hash.Algorithms()
	for v := 0; v <= 0xFFFF; v++ {
		_, inSig := sigs[signature.Algorithm(v)]
		if knownSignature(signature.Algorithm(v)) != inSig {
			t.Fatalf("knownSignature(%#x) = %v, signature.Algorithms() has it: %v", v, !inSig, inSig)
		}
		_, inHash := hashes[hash.Algorithm(v)]
		if knownHash(hash.Algorithm(v)) != inHash {
			t.Fatalf("knownHash(%#x) = %v, hash.Algorithms() has it: %v", v, !inHash, inHash)
		}
	}
}

// lwota patch 5: Unmarshal allocates nothing.
func TestUnmarshalAllocations(t *testing.T) {
	var a Algorithm
	allocs := testing.AllocsPerRun(100, func() {
		if err := a.Unmarshal(tls.ECDSAWithP256AndSHA256); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Unmarshal, want 0", allocs)
	}
}
