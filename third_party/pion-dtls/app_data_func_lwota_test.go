// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 39 (LWOTA-PATCHES.md): HandleApplicationDataFunc hands its record to the
// caller's function instead of the connection's handler, for that record only.

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// TestHandleApplicationDataFunc: the record handed in goes to fn, not the connection's handler;
// the next record, read by the connection's own reader, goes to the handler again; a replay
// reaches neither; without a connection handler nothing is taken, fn or not.
func TestHandleApplicationDataFunc(t *testing.T) {
	da, ca, cb := pipeDiverted(t)
	var mu sync.Mutex
	var viaHandler, viaFn []string
	handler := func(data []byte) { mu.Lock(); viaHandler = append(viaHandler, string(data)); mu.Unlock() }
	fn := func(data []byte) { mu.Lock(); viaFn = append(viaFn, string(data)); mu.Unlock() }
	counts := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(viaHandler), len(viaFn) }

	da.divert.Store(true)
	if _, err := ca.Write([]byte("direct")); err != nil {
		t.Fatal(err)
	}
	dgram := <-da.out
	if cb.HandleApplicationDataFunc(bytes.Clone(dgram), ca.LocalAddr(), fn) {
		t.Fatal("taken without a connection handler")
	}
	cb.SetApplicationDataHandler(handler)
	if !cb.HandleApplicationDataFunc(bytes.Clone(dgram), ca.LocalAddr(), fn) {
		t.Fatal("an application data record of an established connection was not taken")
	}
	if h, f := counts(); h != 0 || f != 1 || viaFn[0] != "direct" {
		t.Fatalf("handler got %q, fn got %q; want only fn, \"direct\"", viaHandler, viaFn)
	}
	if !cb.HandleApplicationDataFunc(bytes.Clone(dgram), ca.LocalAddr(), fn) {
		t.Fatal("a replay of a taken record was not taken (to be dropped)")
	}
	if h, f := counts(); h != 0 || f != 1 {
		t.Fatalf("a replayed record was delivered (handler %d, fn %d)", h, f)
	}

	// The reader's record after it goes to the handler: fn was for one record only.
	da.divert.Store(false)
	if _, err := ca.Write([]byte("reader")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, f := counts()
		if h == 1 {
			if f != 1 || viaHandler[0] != "reader" {
				t.Fatalf("handler got %q, fn got %q", viaHandler, viaFn)
			}
			break
		}
		if f > 1 {
			t.Fatalf("the reader's record went to fn (%q)", viaFn)
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader's record never reached the handler")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandleApplicationDataFuncBusy: while the connection processes another record (its
// handler still running), HandleApplicationDataFunc takes nothing and leaves the datagram as it
// was, instead of waiting; once that record is done it takes the datagram.
func TestHandleApplicationDataFuncBusy(t *testing.T) {
	da, ca, cb := pipeDiverted(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var got []string
	handler := func(data []byte) {
		if string(data) == "slow" {
			close(entered)
			<-release
		}
		mu.Lock()
		got = append(got, string(data))
		mu.Unlock()
	}
	cb.SetApplicationDataHandler(handler)
	da.divert.Store(true)
	var dgrams [][]byte
	for _, p := range []string{"slow", "next"} {
		if _, err := ca.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		dgrams = append(dgrams, <-da.out)
	}
	done := make(chan bool)
	go func() { done <- cb.HandleApplicationDataFunc(dgrams[0], ca.LocalAddr(), handler) }()
	<-entered
	next := bytes.Clone(dgrams[1])
	if cb.HandleApplicationDataFunc(next, ca.LocalAddr(), handler) {
		t.Fatal("taken while the connection's handler ran for the record before")
	}
	if !bytes.Equal(next, dgrams[1]) {
		t.Fatal("a datagram not taken was changed")
	}
	close(release)
	if !<-done {
		t.Fatal("the first record was not taken")
	}
	if !cb.HandleApplicationDataFunc(next, ca.LocalAddr(), handler) {
		t.Fatal("not taken once the connection was free")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "slow" || got[1] != "next" {
		t.Fatalf("handled %q, want slow, next", got)
	}
}
