// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 10 (LWOTA-PATCHES.md): application data handed to a handler on the
// reader goroutine.

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestApplicationDataHandler: with a handler set, records reach it in order, with their
// payload, and Read gets none of them; a nil handler gives them back to Read.
func TestApplicationDataHandler(t *testing.T) {
	ca, cb, err := pipeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	got := make(chan []byte, 16)
	cb.SetApplicationDataHandler(func(data []byte) { got <- bytes.Clone(data) })
	// Written from another goroutine: the in-memory pipe blocks a writer whose records nobody
	// takes, so without the handler this test fails below rather than hangs here.
	written := make(chan error, 1)
	go func() {
		for i := range 5 {
			if _, err := ca.Write(bytes.Repeat([]byte{byte(i)}, 100+i)); err != nil {
				written <- err

				return
			}
		}
		written <- nil
	}()
	for i := range 5 {
		select {
		case p := <-got:
			if want := bytes.Repeat([]byte{byte(i)}, 100+i); !bytes.Equal(p, want) {
				t.Fatalf("record %d: handler got %d bytes %x..., want %d bytes of %x", i, len(p), p[:1], len(want), i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d never reached the handler", i)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	_ = cb.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, err := cb.Read(buf); !errors.Is(err, errDeadlineExceeded) {
		t.Fatalf("Read with a handler set: %d bytes, %v; want the deadline (records go to the handler)", n, err)
	}
	_ = cb.SetReadDeadline(time.Time{})
	cb.SetApplicationDataHandler(nil)
	if _, err := ca.Write([]byte("back to Read")); err != nil {
		t.Fatal(err)
	}
	n, err := cb.Read(buf)
	if err != nil || string(buf[:n]) != "back to Read" {
		t.Fatalf("Read after the handler was removed: %q, %v", buf[:n], err)
	}
	if len(got) != 0 {
		t.Fatalf("the removed handler got %d more records", len(got))
	}
}

// TestApplicationDataHandlerSavesCopy: a 1 KiB record read through the handler allocates at
// least 1 KiB less than through Read, which copies it for its channel (ApplicationData's
// Unmarshal). Not under the race detector, whose sync.Pool drops items at random.
func TestApplicationDataHandlerSavesCopy(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	ca, cb, err := pipeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ca.Close(); _ = cb.Close() }()
	payload, buf := make([]byte, 1024), make([]byte, 2048)
	viaRead := func() {
		if _, err := ca.Write(payload); err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		viaRead()
	}
	readBytes := bytesPerRun(200, viaRead)
	got := make(chan int, 1)
	cb.SetApplicationDataHandler(func(data []byte) { got <- copy(buf, data) })
	viaHandler := func() {
		if _, err := ca.Write(payload); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n != len(payload) {
			t.Fatalf("handler got %d bytes, want %d", n, len(payload))
		}
	}
	for range 10 {
		viaHandler()
	}
	handlerBytes := bytesPerRun(200, viaHandler)
	t.Logf("per 1 KiB record written and read: %d bytes allocated through Read, %d through the handler", readBytes, handlerBytes)
	if handlerBytes+1024 > readBytes {
		t.Fatalf("the handler path allocates %d bytes per record, Read's %d: want at least 1 KiB less", handlerBytes, readBytes)
	}
}
