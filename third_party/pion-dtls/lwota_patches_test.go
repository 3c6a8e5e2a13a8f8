// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota's patches 1 and 2 (LWOTA-PATCHES.md): no goroutine per record read or
// written, and fewer copies per record.

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

// blockingPacketConn is a net.PacketConn whose ReadFrom blocks until its read deadline passes
// (or it is closed), and records the deadlines it is given.
type blockingPacketConn struct {
	net.PacketConn // nil: only the methods below are used

	entered   chan struct{}
	deadlines chan time.Time
	closed    chan struct{}
}

func newBlockingPacketConn() *blockingPacketConn {
	return &blockingPacketConn{entered: make(chan struct{}, 16), deadlines: make(chan time.Time, 16), closed: make(chan struct{})}
}

func (b *blockingPacketConn) ReadFrom([]byte) (int, net.Addr, error) {
	b.entered <- struct{}{}
	for {
		select {
		case d := <-b.deadlines:
			if !d.IsZero() && d.Before(time.Now()) {
				return 0, nil, errors.New("i/o timeout")
			}
		case <-b.closed:
			return 0, nil, net.ErrClosed
		}
	}
}

func (b *blockingPacketConn) SetReadDeadline(t time.Time) error {
	b.deadlines <- t

	return nil
}

func (b *blockingPacketConn) Close() error {
	close(b.closed)

	return nil
}

// TestCtxPacketConnNoGoroutinePerCall: a read blocked with a cancellable context costs no
// goroutine besides the reader's own (netctx started one per call), and cancelling the context
// still interrupts it with the context's error; a read with a new context after that works.
func TestCtxPacketConnNoGoroutinePerCall(t *testing.T) {
	under := newBlockingPacketConn()
	pc := newCtxPacketConn(under)
	defer func() { _ = pc.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFromContext(ctx, make([]byte, 10))
		done <- err
	}()
	<-under.entered
	if n := runtime.NumGoroutine(); n != before+1 {
		t.Fatalf("%d goroutines during a blocked read, want %d (the reader only)", n, before+1)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted read: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not interrupt the read")
	}
	// The next read, with a live context, blocks again: its deadline was taken back first.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	go func() {
		_, _, err := pc.ReadFromContext(ctx2, make([]byte, 10))
		done <- err
	}()
	<-under.entered
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second read: %v, want the deadline of its own context", err)
	}
}

// TestRecordAllocations: writing and reading a 1 KiB application data record on an established
// connection allocates at most 6 KiB in all (measured: 4.7 KiB; v3.1.15: 7.7 KiB, with a
// goroutine per Write and per read).
func TestRecordAllocations(t *testing.T) {
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
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		roundtrip()
	}
	runtime.ReadMemStats(&after)
	perRecord := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per 1 KiB record written and read", perRecord)
	if perRecord > 6*1024 {
		t.Fatalf("%d bytes allocated per 1 KiB record written and read, want at most %d", perRecord, 6*1024)
	}
}
