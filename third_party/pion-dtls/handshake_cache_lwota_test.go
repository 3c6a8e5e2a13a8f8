// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota's patch 17 (LWOTA-PATCHES.md): the transcript is merged into one buffer of its
// final size, and the session hash is computed without merging.

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

// pskTranscript is a handshake cache holding a PSK handshake's messages, sized as pion's are.
func pskTranscript(t *testing.T) (*handshakeCache, [][]byte) {
	t.Helper()
	cache := newHandshakeCache()
	var msgs [][]byte
	for i, m := range []struct {
		typ      handshake.Type
		isClient bool
		size     int
	}{
		{handshake.TypeClientHello, true, 190},
		{handshake.TypeServerHello, false, 90},
		{handshake.TypeServerHelloDone, false, 12},
		{handshake.TypeClientKeyExchange, true, 23},
	} {
		data := bytes.Repeat([]byte{byte(i + 1)}, m.size)
		if err := cache.push(data, 0, uint16(i), m.typ, m.isClient); err != nil { //nolint:gosec // G115
			t.Fatal(err)
		}
		msgs = append(msgs, data)
	}

	return cache, msgs
}

func TestHandshakeCacheMergeOneBuffer(t *testing.T) {
	cache, msgs := pskTranscript(t)
	rules := []handshakeCachePullRule{
		{handshake.TypeClientHello, 0, true, false},
		{handshake.TypeServerHello, 0, false, false},
		{handshake.TypeCertificate, 0, false, true}, // absent: skipped
		{handshake.TypeServerHelloDone, 0, false, false},
		{handshake.TypeClientKeyExchange, 0, true, false},
	}
	want := bytes.Join(msgs, nil)
	if got := cache.pullAndMerge(rules...); !bytes.Equal(got, want) {
		t.Fatalf("merged transcript differs: %d bytes, want %d", len(got), len(want))
	}
	// pull's slice and the merged buffer; v3.1.15 reallocated the buffer as it grew (3 in all).
	if allocs := testing.AllocsPerRun(100, func() { cache.pullAndMerge(rules...) }); allocs > 2 {
		t.Errorf("pullAndMerge: %.0f allocations, want at most 2", allocs)
	}

	extra := []byte("certificate verify")
	sum := sha256.Sum256(append(bytes.Join(msgs, nil), extra...))
	got, err := cache.sessionHash(sha256.New, 0, extra)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sum[:]) {
		t.Fatalf("session hash %x, want %x", got, sum)
	}
	// pull's slice, the hash and its sum; v3.1.15 merged into a growing buffer first (5).
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := cache.sessionHash(sha256.New, 0, extra); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Errorf("sessionHash: %.0f allocations, want at most 3", allocs)
	}
}
