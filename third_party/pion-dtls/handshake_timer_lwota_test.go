// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"testing"
	"time"
)

// TestHandshakeWaitReusesTimer: a wait of the state machine whose retransmission timer fires
// allocates nothing once the first wait made the timer (lwota patch 26); v3.1.15 made a timer
// and its channel for every wait. The timer fires every time, so no stale tick is left behind.
func TestHandshakeWaitReusesTimer(t *testing.T) {
	fsm := &handshakeFSM{
		currentFlight: flight0, state: &State{}, retransmitInterval: time.Microsecond,
		cfg: &handshakeConfig{log: quietLogger{}, initialRetransmitInterval: time.Microsecond},
	}
	conn := &flight4TestMockFlightConn{}
	wait := func() {
		next, err := fsm.wait(context.Background(), conn)
		if err != nil || next != handshakeWaiting {
			t.Fatalf("wait: %v, %v; want Waiting after the timer, no error", next, err)
		}
	}
	wait()
	if allocs := testing.AllocsPerRun(50, wait); allocs != 0 {
		t.Errorf("a wait: %.0f allocations, want 0", allocs)
	}
}
