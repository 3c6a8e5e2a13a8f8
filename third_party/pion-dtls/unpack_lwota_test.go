// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota's patch 13 (LWOTA-PATCHES.md): a datagram's records listed without an
// allocation.

import (
	"runtime"
	"testing"
)

// mallocsPerRun is the heap allocations per call of f, averaged over runs calls.
func mallocsPerRun(runs int, f func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)

	return float64(after.Mallocs-before.Mallocs) / float64(runs)
}

// TestRecordReadAllocations: a 1 KiB application data record written and read through the
// application data handler (patch 10) takes at most 10 heap allocations, both sides together:
// v3.1.15 with patches 1-12 took 11, one of them the slice that listed the datagram's records
// (recordlayer.ContentAwareUnpackDatagram), for a datagram that almost always holds one.
//
// Since patches 27-30 the bound is 1: the in-memory pipe's own copy of the datagram (the
// connection's suite is GCM; CCM builds crypto/cipher's CTR stream for a 1 KiB record,
// pkg/crypto/ccm). Patch 30 took the last of pion's: readAndBuffer's errors.As target, which
// escaped, declared for every record (2 allocations with patches 27-29).
func TestRecordReadAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	ca, cb, err := pipeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	payload, buf := make([]byte, 1024), make([]byte, 2048)
	got := make(chan int, 1)
	cb.SetApplicationDataHandler(func(data []byte) { got <- copy(buf, data) })
	record := func() {
		if _, err := ca.Write(payload); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n != len(payload) {
			t.Fatalf("handler got %d bytes, want %d", n, len(payload))
		}
	}
	for range 10 {
		record()
	}
	allocs := mallocsPerRun(500, record)
	t.Logf("%.2f allocations per 1 KiB record written and read", allocs)
	if allocs > 1.05 {
		t.Fatalf("%.2f allocations per record written and read, want at most 1", allocs)
	}
}
