// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota's patch 24 (LWOTA-PATCHES.md): the handshake cache holds its messages by value
// in a slice made once, and keeps the buffers of messages handed over without copying them.

import (
	"bytes"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

// TestHandshakeCachePushAllocations: the eight messages of a PSK handshake (the client's side,
// with its cookie exchange) cost one allocation for the cache's slice plus, through push, one
// copy each; through pushOwned, no copies (and one for the cache itself). v3.1.15 made 21 (an
// item and a copy per message, and the slice of pointers as it grew).
func TestHandshakeCachePushAllocations(t *testing.T) {
	msg := make([]byte, 40)
	for _, c := range []struct {
		name string
		push func(h *handshakeCache, data []byte, seq uint16) error
		max  float64
	}{
		{"push", func(h *handshakeCache, data []byte, seq uint16) error {
			return h.push(data, 0, seq, handshake.TypeClientHello, true)
		}, 10},
		{"pushOwned", func(h *handshakeCache, data []byte, seq uint16) error {
			return h.pushOwned(data, 0, seq, handshake.TypeClientHello, true)
		}, 2},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			h := &handshakeCache{}
			for seq := range uint16(8) {
				if err := c.push(h, msg, seq); err != nil {
					t.Fatal(err)
				}
			}
		})
		if allocs > c.max {
			t.Errorf("%s: 8 messages cost %.0f allocations, want at most %.0f", c.name, allocs, c.max)
		}
	}
}

// TestHandshakeCacheItemsOutliveGrowth: an item pulled before the cache grows past its first
// slice still reads what was pushed, and so does a pull after it; push copies what it is given
// (the caller may reuse its buffer), pushOwned keeps it.
func TestHandshakeCacheItemsOutliveGrowth(t *testing.T) {
	h := newHandshakeCache()
	buf := []byte{1, 2, 3}
	if err := h.push(buf, 0, 0, handshake.TypeClientHello, true); err != nil {
		t.Fatal(err)
	}
	buf[0] = 9 // the caller's buffer reused
	owned := []byte{4, 5, 6}
	if err := h.pushOwned(owned, 0, 1, handshake.TypeServerHello, false); err != nil {
		t.Fatal(err)
	}
	first := h.pull(handshakeCachePullRule{typ: handshake.TypeClientHello, isClient: true})[0]
	for seq := uint16(2); seq < 3*handshakeCacheInitialCount; seq++ {
		if err := h.push([]byte{byte(seq)}, 0, seq, handshake.TypeFinished, seq%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first.data, []byte{1, 2, 3}) {
		t.Errorf("ClientHello pulled before growth reads %v", first.data)
	}
	got := h.pull(
		handshakeCachePullRule{typ: handshake.TypeClientHello, isClient: true},
		handshakeCachePullRule{typ: handshake.TypeServerHello},
	)
	if !bytes.Equal(got[0].data, []byte{1, 2, 3}) || &got[1].data[0] != &owned[0] {
		t.Errorf("after growth: ClientHello %v, ServerHello %v (owned buffer kept: %v)",
			got[0].data, got[1].data, &got[1].data[0] == &owned[0])
	}
	if len(h.cache) != 3*handshakeCacheInitialCount {
		t.Errorf("%d messages cached, want %d", len(h.cache), 3*handshakeCacheInitialCount)
	}
}
