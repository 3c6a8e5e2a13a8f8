// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota patch 11 (LWOTA-PATCHES.md) on a connection: the AEAD suite seals a record in
// its pooled buffer.

import "testing"

// TestRecordAllocationsSealInPlace: writing and reading a 1 KiB record allocates at most 3 KiB
// (measured 2.4 KiB; 3.6 KiB before patch 11, which sealed into a buffer allocated per record).
// Not under the race detector, whose sync.Pool drops items at random.
func TestRecordAllocationsSealInPlace(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	ca, cb, err := pipeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	payload, buf := make([]byte, 1024), make([]byte, 2048)
	roundtrip := func() {
		if _, err := ca.Write(payload); err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		roundtrip()
	}
	if got := bytesPerRun(200, roundtrip); got > 3*1024 {
		t.Fatalf("%d bytes allocated per 1 KiB record written and read, want at most %d", got, 3*1024)
	}
}
