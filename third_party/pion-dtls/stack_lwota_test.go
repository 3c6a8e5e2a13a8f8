// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota's patch 15 (LWOTA-PATCHES.md): the handshake goroutines grow their stacks at
// their start, not deep in the first flight.

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/transport/v5/dpipe"
)

// stackMoved reports whether calling f copied the calling goroutine's stack elsewhere (it grew):
// a local's address, kept as a number the runtime does not adjust, changes.
//
//go:noinline
func stackMoved(f func()) bool {
	var local byte
	before := uintptr(unsafe.Pointer(&local))
	f()

	return uintptr(unsafe.Pointer(&local)) != before
}

// useStack3K needs 3 KiB of stack, about what the rest of the server's first flight needs
// below its PSK callback (the cipher suite's Init, the PRF, the Finished record's decryption).
// On v3.1.15 a call of 2 KiB or more there grew the stack.
//
//go:noinline
func useStack3K() {
	var frame [3 << 10]byte
	keepFrame(frame[:])
}

func TestStackGrownBeforeFirstFlight(t *testing.T) {
	// No collection during the handshake: a GC shrinks the stack of a goroutine that waits
	// using under a quarter of it (the state machine between flights), and the other tests of
	// the package leave enough garbage for one to come at any moment.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	psk := func([]byte) ([]byte, error) { return []byte("lwota-test-psk-0123456789abcdef0"), nil }
	moved := make(chan bool, 1)
	serverPSK := func(id []byte) ([]byte, error) {
		// Called on the state machine's goroutine, in the middle of the server's first flight.
		select {
		case moved <- stackMoved(useStack3K):
		default:
		}

		return psk(id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ca, cb := dpipe.Pipe()
	errc := make(chan error, 1)
	clientc := make(chan *Conn, 1)
	go func() {
		client, err := ClientWithOptions(dtlsnet.PacketConnFromConn(ca), ca.RemoteAddr(),
			WithPSK(psk), WithPSKIdentityHint([]byte("test")), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
		if err == nil {
			clientc <- client
			err = client.HandshakeContext(ctx)
		}
		errc <- err
	}()
	defer func() {
		select {
		case client := <-clientc:
			_ = client.Close()
		default:
		}
	}()
	server, err := ServerWithOptions(dtlsnet.PacketConnFromConn(cb), cb.RemoteAddr(),
		WithPSK(serverPSK), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close() //nolint:errcheck
	if err := server.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if <-moved {
		t.Error("the state machine's stack grew in the middle of the first flight; want it grown at the goroutine's start")
	}
}
