// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 41 (LWOTA-PATCHES.md): ctxPacketConn knows it is closed by a flag, not
// by a channel each call polls.

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/pion/transport/v5/netctx"
)

// TestCtxPacketConnClosed: every call made after Close fails as before the patch (reads with
// net.ErrClosed, writes with netctx.ErrClosing) without touching the underlying conn, and
// writes racing Close either go through or fail so (checked under -race by CI).
func TestCtxPacketConnClosed(t *testing.T) {
	ctx := context.Background()
	a, b := newLendPipe()
	defer func() { _ = b.Close() }()
	pc, ok := newCtxPacketConn(a).(*ctxPacketConn)
	if !ok {
		t.Fatal("newCtxPacketConn: not a *ctxPacketConn")
	}
	if _, err := pc.WriteToContext(ctx, []byte("open"), pipeAddr("b")); err != nil {
		t.Fatalf("write before Close: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, err := pc.WriteToContext(ctx, []byte("x"), pipeAddr("b")); err != nil &&
					!errors.Is(err, netctx.ErrClosing) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("write racing Close: %v", err)

					return
				}
			}
		}()
	}
	if err := pc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for len(b.in) > 0 { // what went through before Close
		<-b.in
	}
	if _, err := pc.WriteToContext(ctx, []byte("after"), pipeAddr("b")); !errors.Is(err, netctx.ErrClosing) {
		t.Errorf("write after Close: %v, want netctx.ErrClosing", err)
	}
	if len(b.in) != 0 {
		t.Error("a write after Close reached the underlying conn")
	}
	if _, _, err := pc.ReadFromContext(ctx, make([]byte, 16)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFromContext after Close: %v, want net.ErrClosed", err)
	}
	if _, _, err := pc.readDatagramContext(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("readDatagramContext after Close: %v, want net.ErrClosed", err)
	}
}
