// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 38 (LWOTA-PATCHES.md): the state machine of a finished handshake ends;
// the reader answers the peer's retransmitted last flight.

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
)

// TestFinishedHandshakeEndsStateMachine: an established pair runs two goroutines, the two
// readers; the state machines have ended. Without the patch each side's state machine waits
// in finish for the life of the connection: four goroutines per pair.
func TestFinishedHandshakeEndsStateMachine(t *testing.T) {
	const pairs = 10
	g0 := runtime.NumGoroutine()
	conns := make([]*Conn, 0, 2*pairs)
	for range pairs {
		c, s, _, _ := lendPair(t, false)
		conns = append(conns, c, s)
	}
	// A state machine ends right after its side's handshake returns: give it the time.
	var perPair float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if perPair = float64(runtime.NumGoroutine()-g0) / pairs; perPair <= 2 {
			break
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if perPair > 2.5 {
		t.Fatalf("%.1f goroutines per established pair, want 2 (the readers)", perPair)
	}
}

// TestServerAnswersLostLastFlight: the server's last flight (ChangeCipherSpec and Finished) is
// lost once; the client retransmits its own last flight, which reaches the server after its
// state machine has ended, and the server's reader sends its last flight again: the client's
// handshake completes and records flow both ways.
func TestServerAnswersLostLastFlight(t *testing.T) {
	pa, pb := newLendPipe()
	var dropped atomic.Int32
	pb.drop = func(b []byte) bool { // the server's end: drop its first ChangeCipherSpec datagram
		return len(b) > 0 && protocol.ContentType(b[0]) == protocol.ContentTypeChangeCipherSpec && dropped.Add(1) == 1
	}
	client, server, _, _ := lendPairOver(t, pa, pb, false)
	defer func() { _ = client.Close(); _ = server.Close() }()
	if dropped.Load() < 2 {
		t.Fatalf("the server sent its last flight %d times, want it sent again after the loss", dropped.Load())
	}
	buf := make([]byte, 64)
	for _, dir := range []struct {
		from, to *Conn
		msg      string
	}{{client, server, "from the client"}, {server, client, "from the server"}} {
		if _, err := dir.from.Write([]byte(dir.msg)); err != nil {
			t.Fatal(err)
		}
		_ = dir.to.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := dir.to.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], []byte(dir.msg)) {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, dir.msg)
		}
	}
}
