// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

// TestHandshakeTraceNoAllocations: with tracing off, a trace of the state machine (a step, a
// transition) and of a handshake message sent allocates nothing; its
// arguments go in an array of the state machine or the connection (lwota patch 23), where
// v3.1.15 with patches 7 and 16 still built the variadic list on the heap (1 allocation each).
// TestHandshakeFSMTrace and TestHandshakeTraceNoStrings check the lines still read the same.
func TestHandshakeTraceNoAllocations(t *testing.T) {
	fsm := &handshakeFSM{currentFlight: flight4, state: &State{}, cfg: &handshakeConfig{log: quietLogger{}}}
	conn := &Conn{log: quietLogger{}}
	for name, trace := range map[string]func(){
		"step":       func() { fsm.traceState(handshakeWaiting) },
		"transition": func() { fsm.traceTransition(flight6) },
		"sent":       func() { conn.traceSent(handshake.TypeServerHello, 1, 200) },
	} {
		if allocs := testing.AllocsPerRun(100, trace); allocs != 0 {
			t.Errorf("%s trace with tracing off: %.0f allocations, want 0", name, allocs)
		}
	}
}
