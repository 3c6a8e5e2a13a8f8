package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
)

func TestParseMoved(t *testing.T) {
	tests := []struct {
		payload  string
		from, to uint16
		ep       string
		ok       bool
	}{
		{"1 2 urn:imei:1", 1, 2, "urn:imei:1", true},
		{"65535 3 dev with spaces", 65535, 3, "dev with spaces", true},
		{"1 2", 0, 0, "", false},
		{"1 2 ", 0, 0, "", false},
		{"0 2 dev", 0, 0, "", false},
		{"1 65536 dev", 0, 0, "", false},
		{"x 2 dev", 0, 0, "", false},
		{"", 0, 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.payload, func(t *testing.T) {
			from, to, ep, ok := parseMoved(tc.payload)
			if from != tc.from || to != tc.to || ep != tc.ep || ok != tc.ok {
				t.Errorf("parseMoved(%q) = %d, %d, %q, %v; want %d, %d, %q, %v", tc.payload, from, to, ep, ok, tc.from, tc.to, tc.ep, tc.ok)
			}
		})
	}
}

// TestWireErrors: an error handed back from the owner still matches what the API branches on.
func TestWireErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		is   error
	}{
		{"timeout", fmt.Errorf("read: %w", dm.ErrTimeout), dm.ErrTimeout},
		{"offline", dm.ErrOffline, dm.ErrOffline},
		{"asleep", dm.ErrAsleep, dm.ErrAsleep},
		{"queue full", dm.ErrQueueFull, dm.ErrQueueFull},
		{"invalid", fmt.Errorf("%w: bad path", dm.ErrInvalid), dm.ErrInvalid},
		{"not registered", fmt.Errorf("device x: %w", registration.ErrNotFound), registration.ErrNotFound},
		{"busy", ErrBusy, dm.ErrUnavailable},
		{"owner down", ErrOwnerDown, dm.ErrOffline},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fromWire(toWire(tc.err))
			if !errors.Is(got, tc.is) {
				t.Errorf("%v came back as %v, which is not %v", tc.err, got, tc.is)
			}
		})
	}
	t.Run("device error", func(t *testing.T) {
		got := fromWire(toWire(fmt.Errorf("read: %w", &dm.DeviceError{Code: "4.04", Msg: "no such resource"})))
		var de *dm.DeviceError
		if !errors.As(got, &de) || de.Code != "4.04" || de.Msg != "no such resource" {
			t.Errorf("came back as %#v", got)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if w := toWire(nil); w != nil || fromWire(nil) != nil {
			t.Errorf("nil error became %+v", w)
		}
	})
	t.Run("other", func(t *testing.T) {
		got := fromWire(toWire(errors.New("disk on fire")))
		if got == nil || errors.Is(got, dm.ErrTimeout) {
			t.Errorf("came back as %v", got)
		}
	})
}

func TestAdmitRegister(t *testing.T) {
	n := New(Config{Name: "a", DrainRetry: 45 * time.Second}, nil, nil, nil, nil, nil)
	if _, _, ok := n.AdmitRegister(); !ok {
		t.Fatal("a node that does not drain refused a Register")
	}
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	after, reason, ok := n.AdmitRegister()
	if ok || after != 45*time.Second || reason == "" {
		t.Errorf("draining: %v, %q, %v; want a refusal with 45 s", after, reason, ok)
	}
}
