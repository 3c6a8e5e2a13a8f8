// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 20 (LWOTA-PATCHES.md): Conn.Write without locks or channels of its own
// once the handshake is done, while no write deadline is set.

import (
	"errors"
	"testing"
	"time"
)

// TestWriteTakesNoConnLock: an established connection's Write takes neither the handshake's
// mutex nor the write context's (nor the Deadline's, which the test cannot hold): a Write made
// while another goroutine holds both completes. On v3.1.15 it waits for them.
func TestWriteTakesNoConnLock(t *testing.T) {
	client, server, _ := pskPairCapturing(t, TLS_PSK_WITH_AES_128_CCM_8, false)
	_ = server
	if _, err := client.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	client.handshakeMutex.Lock()
	client.writeCtxMu.Lock()
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write([]byte("second"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		client.writeCtxMu.Unlock()
		client.handshakeMutex.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		client.writeCtxMu.Unlock()
		client.handshakeMutex.Unlock()
		<-wrote
		t.Fatal("Write waited for the connection's handshake or write context lock")
	}
}

// TestWriteDeadlineAfterFastWrites: writes on the kept context do not outlive a write deadline
// set afterwards (a deadline in the past fails the next Write; taken back, writes go again),
// and a closed connection's Write fails with ErrConnClosed.
func TestWriteDeadlineAfterFastWrites(t *testing.T) {
	for _, setter := range []struct {
		name string
		set  func(*Conn, time.Time) error
	}{
		{"SetWriteDeadline", (*Conn).SetWriteDeadline},
		{"SetDeadline", (*Conn).SetDeadline},
	} {
		t.Run(setter.name, func(t *testing.T) {
			client, _, _ := pskPairCapturing(t, TLS_PSK_WITH_AES_128_CCM_8, false)
			for range 3 {
				if _, err := client.Write([]byte("fast")); err != nil {
					t.Fatal(err)
				}
			}
			if client.writeFastContext() == nil {
				t.Fatal("no kept write context after the handshake and three writes")
			}
			if err := setter.set(client, time.Unix(0, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Write([]byte("late")); !errors.Is(err, errDeadlineExceeded) {
				t.Fatalf("Write past the write deadline = %v, want %v", err, errDeadlineExceeded)
			}
			if err := setter.set(client, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Write([]byte("again")); err != nil {
				t.Fatalf("Write after the deadline was taken back = %v", err)
			}
			if err := client.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Write([]byte("closed")); !errors.Is(err, ErrConnClosed) {
				t.Fatalf("Write after Close = %v, want ErrConnClosed", err)
			}
		})
	}
}
