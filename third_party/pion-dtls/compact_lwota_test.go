// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota's patch 18 (LWOTA-PATCHES.md): a flight's records are combined into datagrams
// of their final size.

import (
	"bytes"
	"math/rand"
	"testing"
)

// compactRawPacketsV3115 is Conn.compactRawPackets as pion v3.1.15 has it: the reference.
func compactRawPacketsV3115(mtu int, rawPackets [][]byte) [][]byte {
	if len(rawPackets) == 1 {
		return rawPackets
	}
	combinedRawPackets := make([][]byte, 0)
	currentCombinedRawPacket := make([]byte, 0)
	for _, rawPacket := range rawPackets {
		if len(currentCombinedRawPacket) > 0 && len(currentCombinedRawPacket)+len(rawPacket) >= mtu {
			combinedRawPackets = append(combinedRawPackets, currentCombinedRawPacket)
			currentCombinedRawPacket = []byte{}
		}
		currentCombinedRawPacket = append(currentCombinedRawPacket, rawPacket...)
	}

	return append(combinedRawPackets, currentCombinedRawPacket)
}

func TestCompactRawPacketsMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1)) //nolint:gosec // test data
	for range 2000 {
		mtu := 20 + rng.Intn(300)
		raw := make([][]byte, 1+rng.Intn(8))
		for i := range raw {
			raw[i] = bytes.Repeat([]byte{byte(i + 1)}, 13+rng.Intn(2*mtu))
		}
		c := &Conn{maximumTransmissionUnit: mtu}
		got, want := c.compactRawPackets(raw), compactRawPacketsV3115(mtu, raw)
		if len(got) != len(want) {
			t.Fatalf("mtu %d, %d records: %d datagrams, want %d", mtu, len(raw), len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("mtu %d, %d records: datagram %d differs", mtu, len(raw), i)
			}
		}
	}
}

// TestCompactRawPacketsAllocations: a server's flight of ServerHello and ServerHelloDone in one
// datagram costs the slice of datagrams and the datagram (v3.1.15: 3, growing the datagram).
func TestCompactRawPacketsAllocations(t *testing.T) {
	c := &Conn{maximumTransmissionUnit: 1200}
	raw := [][]byte{make([]byte, 105), make([]byte, 25)}
	if allocs := testing.AllocsPerRun(100, func() { c.compactRawPackets(raw) }); allocs > 2 {
		t.Errorf("%.0f allocations, want at most 2", allocs)
	}
}
