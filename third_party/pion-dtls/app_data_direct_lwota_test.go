// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 33 (LWOTA-PATCHES.md): a datagram of application data handled on the
// caller's goroutine.

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5/dpipe"
)

// divertConn is a net.Conn whose writes, while divert is set, go to the channel out instead of
// the peer: the datagrams a test hands to HandleApplicationData itself.
type divertConn struct {
	net.Conn
	divert atomic.Bool
	out    chan []byte
}

func (d *divertConn) Write(p []byte) (int, error) {
	if d.divert.Load() {
		d.out <- bytes.Clone(p)

		return len(p), nil
	}

	return d.Conn.Write(p)
}

// pipeDiverted is pipeMemory with the client's writes divertable.
func pipeDiverted(t *testing.T) (*divertConn, *Conn, *Conn) {
	t.Helper()
	pa, pb := dpipe.Pipe()
	da := &divertConn{Conn: pa, out: make(chan []byte, 64)}
	ca, cb, err := pipeConn(da, pb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { da.divert.Store(false); _ = ca.Close(); _ = cb.Close() })

	return da, ca, cb
}

// TestHandleApplicationData: an application data datagram handed in reaches the handler before
// HandleApplicationData returns (on the caller's goroutine, not the reader's), decrypted; the
// same datagram again is a replay and dropped; without a handler, or for a datagram that is
// not application data, nothing is taken.
func TestHandleApplicationData(t *testing.T) {
	da, ca, cb := pipeDiverted(t)
	var mu sync.Mutex
	var got [][]byte
	handler := func(data []byte) { mu.Lock(); got = append(got, bytes.Clone(data)); mu.Unlock() }
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	da.divert.Store(true)
	if _, err := ca.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	dgram := <-da.out
	if cb.HandleApplicationData(bytes.Clone(dgram), ca.LocalAddr()) {
		t.Fatal("taken without a handler")
	}
	cb.SetApplicationDataHandler(handler)
	if !cb.HandleApplicationData(bytes.Clone(dgram), ca.LocalAddr()) {
		t.Fatal("an application data record of an established connection was not taken")
	}
	if n := received(); n != 1 || string(got[0]) != "first" {
		t.Fatalf("after HandleApplicationData returned the handler had %d records (%q), want \"first\"", n, got)
	}
	if !cb.HandleApplicationData(bytes.Clone(dgram), ca.LocalAddr()) || received() != 1 {
		t.Fatalf("a replayed record reached the handler (%d records)", received())
	}
	forged := bytes.Clone(dgram)
	forged[len(forged)-1] ^= 1
	forged[10]++ // a fresh sequence number, so that only the tag refuses it
	if !cb.HandleApplicationData(forged, ca.LocalAddr()) || received() != 1 {
		t.Fatalf("a record that does not authenticate reached the handler (%d records)", received())
	}
	if cb.HandleApplicationData([]byte{21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0}, ca.LocalAddr()) {
		t.Fatal("an alert record was taken")
	}
	if cb.HandleApplicationData(append(bytes.Clone(dgram), dgram...), ca.LocalAddr()) {
		t.Fatal("a datagram of two records was taken")
	}
	// The reader's path still works beside it.
	da.divert.Store(false)
	if _, err := ca.Write([]byte("through the reader")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for received() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("a record through the reader never reached the handler")
		}
		time.Sleep(time.Millisecond)
	}
	if string(got[1]) != "through the reader" {
		t.Fatalf("handler got %q", got[1])
	}
}

// TestHandleApplicationDataBesideReader: records handed in and records the reader takes, at
// once, are processed one at a time (the race detector checks the replay window and the
// cipher state), and each reaches the handler exactly once. The client sends them alternately,
// one of each in flight at a time: the pipe drops datagrams its reader has not taken yet, and
// the replay window refuses a record 64 behind the newest, either of which a reader slowed
// down by the race detector on a loaded machine would otherwise meet.
func TestHandleApplicationDataBesideReader(t *testing.T) {
	da, ca, cb := pipeDiverted(t)
	var mu sync.Mutex
	seen := map[string]int{}
	cb.SetApplicationDataHandler(func(data []byte) { mu.Lock(); seen[string(data)]++; mu.Unlock() })
	handled := func(rec string) bool { mu.Lock(); defer mu.Unlock(); return seen[rec] > 0 }
	const n = 200
	go func() {
		for i := range n {
			da.divert.Store(false)
			if _, err := ca.Write([]byte{'r', byte(i)}); err != nil {
				t.Error(err)

				return
			}
			da.divert.Store(true)
			if _, err := ca.Write([]byte{'d', byte(i)}); err != nil {
				t.Error(err)

				return
			}
			for deadline := time.Now().Add(10 * time.Second); !handled(string([]byte{'d', byte(i)})); time.Sleep(100 * time.Microsecond) {
				if time.Now().After(deadline) {
					t.Errorf("record d%d handed in never reached the handler", i)

					return
				}
			}
		}
	}()
	for range n {
		select {
		case d := <-da.out:
			if !cb.HandleApplicationData(d, ca.LocalAddr()) {
				t.Fatal("not taken")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the client stopped sending")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k == 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records reached the handler", k, 2*n)
		}
		time.Sleep(time.Millisecond)
	}
	for k, v := range seen {
		if v != 1 {
			t.Fatalf("record %q handled %d times", k, v)
		}
	}
}
