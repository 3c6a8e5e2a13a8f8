// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 32 (LWOTA-PATCHES.md): a read or write with the context its direction
// already watches does not take the watch's lock.

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestCtxWatchSettledTakesNoLock: once a read and a write have been made with a context, the
// next ones with the same context complete while the test holds both watches' locks (before
// the patch each call took its watch's lock and blocked here). A later context and a cancelled
// one still go through the lock and behave as before: the cancelled one fails with its error,
// and a new one after it reads and writes (the deadline it moved was put back).
func TestCtxWatchSettledTakesNoLock(t *testing.T) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	nc := newCtxPacketConn(a)
	pc, _ := nc.(*ctxPacketConn)
	defer func() { _ = pc.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buf := make([]byte, 16)
	roundtrip := func(ctx context.Context) error {
		if _, err := pc.WriteToContext(ctx, []byte("ping"), b.LocalAddr()); err != nil {
			return err
		}
		if _, err := b.WriteTo([]byte("pong"), a.LocalAddr()); err != nil {
			return err
		}
		_, _, err := pc.ReadFromContext(ctx, buf)

		return err
	}
	if err := roundtrip(ctx); err != nil {
		t.Fatal(err)
	}
	drain := make([]byte, 16)
	if _, _, err := b.ReadFrom(drain); err != nil {
		t.Fatal(err)
	}

	pc.read.mu.Lock()
	pc.write.mu.Lock()
	done := make(chan error, 1)
	go func() { done <- roundtrip(ctx) }()
	var waited bool
	select {
	case err = <-done:
	case <-time.After(10 * time.Second): // not a performance bound: blocked on the lock for good
		waited = true
	}
	pc.write.mu.Unlock()
	pc.read.mu.Unlock()
	if waited {
		<-done
		t.Fatal("a read and write with the watched context waited for the watches' locks")
	}
	if err != nil {
		t.Fatalf("settled read and write: %v", err)
	}
	if _, _, err := b.ReadFrom(drain); err != nil {
		t.Fatal(err)
	}

	cancel()
	if err := roundtrip(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("round trip with the cancelled context: %v, want context.Canceled", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	for i := range 2 { // the second time on the fast path
		if err := roundtrip(ctx2); err != nil {
			t.Fatalf("round trip %d with a new context after a cancelled one: %v", i, err)
		}
		if _, _, err := b.ReadFrom(drain); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCtxWatchSettledInterrupted: a read blocked after taking the fast path (its context
// watched already) is still interrupted when that context ends.
func TestCtxWatchSettledInterrupted(t *testing.T) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc := newCtxPacketConn(a)
	defer func() { _ = pc.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := pc.WriteToContext(ctx, []byte("x"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, _, err := pc.ReadFromContext(ctx, buf); err != nil { // watches ctx, reads our own "x"
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFromContext(ctx, buf)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted read: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the watched context did not interrupt a read on the fast path")
	}
}
