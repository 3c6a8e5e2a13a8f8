// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 29 (LWOTA-PATCHES.md): the replay window is used without a closure per
// record.

import (
	"context"
	"fmt"
	"testing"
)

// sealedRecords has client write n records of size bytes into sock, which captures them and
// sends none, and returns them.
func sealedRecords(t *testing.T, client *Conn, sock *capturingConn, n, size int) [][]byte {
	t.Helper()
	sock.discard.Store(true)
	sock.mu.Lock()
	sock.capture, sock.sent = true, nil
	sock.mu.Unlock()
	payload := make([]byte, size)
	for range n {
		if _, err := client.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	sock.mu.Lock()
	defer sock.mu.Unlock()
	records := sock.sent
	sock.capture, sock.sent = false, nil
	if len(records) != n {
		t.Fatalf("captured %d records, want %d", len(records), n)
	}

	return records
}

// TestHandleIncomingRecordAllocations: an application data record taken in by the server
// (handleIncomingPacket: header, replay window, decryption in place, the handler of patch 10)
// allocates nothing (PSK GCM, 1 KiB). Before patch 29 the replay window's Check allocated the
// closure that marks the record. A record handed in twice reaches the handler once.
//
// With a connection id (patch 31's case, cid=true) the record is unwrapped where it lies;
// before patch 31 that cost 5 allocations more: the two ids of zeros that told the parsers its
// length, the inner plaintext's copy of the content, the plain header and the record rebuilt
// from both.
func TestHandleIncomingRecordAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	for _, cid := range []bool{false, true} {
		t.Run(fmt.Sprintf("cid=%v", cid), func(t *testing.T) { testHandleIncomingRecordAllocations(t, cid) })
	}
}

func testHandleIncomingRecordAllocations(t *testing.T, cid bool) {
	t.Helper()
	const runs = 300
	client, server, sock := pskPairCapturing(t, TLS_PSK_WITH_AES_128_GCM_SHA256, cid)
	records := sealedRecords(t, client, sock, runs+2, 1024)
	handled := 0
	server.SetApplicationDataHandler(func(data []byte) {
		if len(data) != 1024 {
			t.Errorf("handler got %d bytes, want 1024", len(data))
		}
		handled++
	})
	ctx := context.Background()
	addr := server.RemoteAddr()
	next := 0
	handle := func() {
		if _, _, _, err := server.handleIncomingPacket(ctx, records[next], addr, true); err != nil {
			t.Fatal(err)
		}
		next++
	}
	replayed := append([]byte{}, records[0]...)
	handle()
	if _, _, _, err := server.handleIncomingPacket(ctx, replayed, addr, true); err != nil {
		t.Fatal(err)
	}
	if handled != 1 {
		t.Fatalf("a record handed in twice reached the handler %d times, want once", handled)
	}
	if allocs := testing.AllocsPerRun(runs, handle); allocs != 0 {
		t.Fatalf("%.2f allocations per record taken in, want 0", allocs)
	}
	if handled != runs+2 {
		t.Fatalf("the handler got %d records, want %d", handled, runs+2)
	}
}
