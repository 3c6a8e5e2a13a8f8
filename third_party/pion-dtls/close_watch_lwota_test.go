// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Test of lwota's patch 36 (LWOTA-PATCHES.md): closing a connection starts no goroutine for
// its context watches.

import (
	"context"
	"runtime/metrics"
	"testing"
	"time"

	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/transport/v5/dpipe"
)

// goroutinesCreated is the number of goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)

	return s[0].Value.Uint64()
}

// TestCloseStartsNoWatchGoroutines: a server closing an established connection (close_notify
// sent) and the client closing on it (close_notify answered, RFC 5246 §7.2.1) start no
// goroutine: each closes its conn, which unblocks its reader; v3.1.15 with patch 1 cancelled the
// reader's context first, and the read and write watches' AfterFuncs each started a goroutine
// to move a deadline (4 for the pair). The client's Read still ends, and the server's Close
// returns.
func TestCloseStartsNoWatchGoroutines(t *testing.T) {
	// Other tests' goroutines may start one of their own meanwhile: the fewest of three
	// closings counts (the patch makes it 0; without it, every closing starts 4).
	least := uint64(1 << 63)
	for range 3 {
		least = min(least, goroutinesStartedClosing(t))
	}
	if least > 0 {
		t.Fatalf("%d goroutines started while the pair closed, want 0", least)
	}
}

// goroutinesStartedClosing establishes a PSK pair over a pipe, then closes the server and waits
// until the client has closed too, and returns how many goroutines started meanwhile.
func goroutinesStartedClosing(t *testing.T) uint64 {
	t.Helper()
	psk := func([]byte) ([]byte, error) { return []byte("lwota-test-psk-0123456789abcdef0"), nil }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ca, cb := dpipe.Pipe()
	clientc := make(chan *Conn, 1)
	errc := make(chan error, 1)
	go func() {
		client, err := ClientWithOptions(dtlsnet.PacketConnFromConn(ca), ca.RemoteAddr(),
			WithPSK(psk), WithPSKIdentityHint([]byte("test")), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
		if err == nil {
			err = client.HandshakeContext(ctx)
			clientc <- client
		}
		errc <- err
	}()
	server, err := ServerWithOptions(dtlsnet.PacketConnFromConn(cb), cb.RemoteAddr(),
		WithPSK(psk), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	if err := server.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	client := <-clientc
	defer client.Close() //nolint:errcheck

	before := goroutinesCreated()
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	// The client's read loop takes the close_notify, answers it and closes the client; Read
	// returns once that loop has ended.
	if _, err := client.Read(make([]byte, 64)); err == nil {
		t.Fatal("client Read after the server's close_notify: no error")
	}

	return goroutinesCreated() - before
}
