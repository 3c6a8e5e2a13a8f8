package transport

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// sessionConn lends pion the demultiplexer's copy of each datagram (pion patch 37).
var _ dtls.DatagramLender = (*sessionConn)(nil)

// lendSessionBytes bounds the live heap of one established session, its pion client (reading
// its UDP socket with an 8 KiB buffer) included, both waiting for a datagram: 40.9 KB when
// the server's pion reader waited in ReadFrom with an 8 KiB buffer of its own (37.9 KB at 200
// sessions), 29.7 KB lending.
const lendSessionBytes = 34 << 10

// TestDTLSSessionHoldsNoReadBuffer: established sessions waiting for their next record hold no
// pion read buffer on the server's side: the live heap per session, client included, stays
// under lendSessionBytes; it does not when pion reads the sessionConn through ReadFrom. Then
// every session still answers a request (pion decrypted the lent datagrams).
func TestDTLSSessionHoldsNoReadBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random, and the heap measured with them")
	}
	var calls atomic.Int64
	te, link := startDTLS(t, registerHandler(&calls, nil), DTLSConfig{IdleTimeout: time.Hour})
	warmGoroutines(goroutinesPerSession * releaseSessions)
	before := liveHeapNow()
	conns := openSessions(t, te.addr, releaseSessions)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	eventually(t, "sessions open", func() bool { return link.sessions() == releaseSessions })
	held := (liveHeapNow() - before) / releaseSessions
	runtime.KeepAlive(conns)
	t.Logf("live heap per established session, its pion client included: %d B", held)
	if held > lendSessionBytes {
		t.Errorf("an established session holds %d B of live heap, client included: want at most %d", held, lendSessionBytes)
	}
	buf := make([]byte, 1500)
	for i, c := range conns {
		if _, err := c.Write(datagram(t, typeCON, uint16(i), req(POST, "/rd", 1))); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("session %d: no answer: %v", i, err)
		}
	}
}
