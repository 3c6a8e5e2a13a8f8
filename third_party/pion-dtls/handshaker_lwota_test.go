// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"fmt"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/logging"
)

// traceRecorder is a LeveledLogger that keeps the last Tracef line.
type traceRecorder struct {
	logging.LeveledLogger
	last string
}

func (r *traceRecorder) Tracef(format string, args ...any) { r.last = fmt.Sprintf(format, args...) }

// quietLogger drops everything, as a disabled logger does.
type quietLogger struct{ logging.LeveledLogger }

func (quietLogger) Tracef(string, ...any) {}

// TestHandshakeFSMTrace: the trace line of each step reads as before lwota patch 7, and with
// tracing off costs at most the variadic slice (v3.1.15: four allocations per step, one for
// each string argument boxed, on every step of every handshake).
func TestHandshakeFSMTrace(t *testing.T) {
	for _, test := range []struct {
		isClient bool
		flight   flightVal
		state    handshakeState
		want     string
	}{
		{false, flight4, handshakePreparing, "[handshake:server] Flight 4: Preparing"},
		{true, flight5, handshakeWaiting, "[handshake:client] Flight 5: Waiting"},
		{false, flight6, handshakeFinished, "[handshake:server] Flight 6: Finished"},
	} {
		rec := &traceRecorder{}
		fsm := &handshakeFSM{currentFlight: test.flight, state: &State{isClient: test.isClient}, cfg: &handshakeConfig{log: rec}}
		fsm.traceState(test.state)
		if rec.last != test.want {
			t.Errorf("trace %q, want %q", rec.last, test.want)
		}
	}

	fsm := &handshakeFSM{currentFlight: flight4, state: &State{}, cfg: &handshakeConfig{log: quietLogger{}}}
	allocs := testing.AllocsPerRun(100, func() { fsm.traceState(handshakeWaiting) })
	if allocs > 1 {
		t.Errorf("a step's trace with tracing off: %.0f allocations, want at most 1", allocs)
	}
}

// TestHandshakeTraceNoStrings: the traces of a flight transition and of a handshake message
// sent read as before lwota patch 16, and with tracing off cost at most the variadic slice
// (v3.1.15 boxed three strings per transition and two per message: 4 and 3 allocations).
func TestHandshakeTraceNoStrings(t *testing.T) {
	rec := &traceRecorder{}
	fsm := &handshakeFSM{currentFlight: flight4, state: &State{}, cfg: &handshakeConfig{log: rec}}
	fsm.traceTransition(flight6)
	if want := "[handshake:server] Flight 4 -> Flight 6"; rec.last != want {
		t.Errorf("transition trace %q, want %q", rec.last, want)
	}
	conn := &Conn{log: rec, state: State{isClient: true}}
	conn.traceSent(handshake.TypeClientHello, 0, 1)
	if want := "[handshake:client] -> ClientHello (epoch: 0, seq: 1)"; rec.last != want {
		t.Errorf("sent trace %q, want %q", rec.last, want)
	}

	fsm.cfg.log, conn.log = quietLogger{}, quietLogger{}
	for name, f := range map[string]func(){
		"transition": func() { fsm.traceTransition(flight6) },
		"sent":       func() { conn.traceSent(handshake.TypeServerHello, 0, 1) },
	} {
		if allocs := testing.AllocsPerRun(100, f); allocs > 1 {
			t.Errorf("%s trace with tracing off: %.0f allocations, want at most 1", name, allocs)
		}
	}
}
