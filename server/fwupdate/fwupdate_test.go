package fwupdate

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// jobIn returns a job standing in s; a failed job gets a retry due at t0 when retry is set.
func jobIn(s State, retry bool) *Job {
	j, _ := NewJob("j", "ep", ImageRef{ID: "i", Version: "1.4.2", Size: 1 << 20}, MethodPull, DefaultPolicy(), "", t0)
	j.State = s
	if retry {
		j.NextAttemptAt = t0
	}
	return j
}

func TestApply(t *testing.T) {
	allowedMoves := map[State][]State{
		StateQueued:     {StateWaiting, StateDelivering, StateFailed, StateCancelled},
		StateWaiting:    {StateDelivering, StateFailed, StateCancelled},
		StateDelivering: {StateWaiting, StateDownloaded, StateFailed, StateCancelled},
		StateDownloaded: {StateUpdating, StateFailed, StateCancelled},
		StateUpdating:   {StateVerifying, StateFailed, StateCancelled},
		StateVerifying:  {StateSucceeded, StateFailed, StateCancelled},
		StateFailed:     {StateQueued},
	}
	for _, from := range States {
		ok := map[State]bool{}
		for _, to := range allowedMoves[from] {
			ok[to] = true
		}
		for _, to := range States {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				j := jobIn(from, true)
				tr, err := j.Apply(to, t0.Add(time.Second), "why")
				if !ok[to] {
					if !errors.Is(err, ErrInvalidTransition) {
						t.Fatalf("err = %v, want ErrInvalidTransition", err)
					}
					if j.State != from || j.Seq != 1 {
						t.Errorf("refused transition changed the job: %s #%d", j.State, j.Seq)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := Transition{JobID: "j", Seq: 2, From: from, To: to, At: t0.Add(time.Second), Reason: "why",
					DeviceState: Unknown, DeviceResult: Unknown, Attempt: 1}
				if from == StateFailed {
					want.Attempt = 2
				}
				if tr != want {
					t.Errorf("transition = %+v, want %+v", tr, want)
				}
				if j.State != to || j.Seq != 2 || !j.UpdatedAt.Equal(tr.At) || !j.StepAt[to].Equal(tr.At) || j.Attempt != want.Attempt {
					t.Errorf("job after Apply: %+v", j)
				}
			})
		}
	}
}

func TestApplyRetryRules(t *testing.T) {
	tests := []struct {
		name  string
		retry bool
		at    time.Time
		ok    bool
	}{
		{"failed for good", false, t0.Add(time.Hour), false},
		{"retry not due", true, t0.Add(-time.Second), false},
		{"retry due", true, t0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := jobIn(StateFailed, tc.retry)
			j.BytesDelivered = 99
			_, err := j.Apply(StateQueued, tc.at, "")
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (j.Attempt != 2 || j.BytesDelivered != 0 || !j.NextAttemptAt.IsZero() || !j.Active()) {
				t.Errorf("re-queued job: %+v", j)
			}
		})
	}
	j := jobIn(StateDelivering, false)
	if _, err := j.Settle(Decision{Action: ActionRetry, RetryAt: t0.Add(time.Minute)}, t0); err != nil {
		t.Fatal(err)
	}
	if !j.Retryable() || !j.Active() || !j.NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("Settle(retry): %+v", j)
	}
	j = jobIn(StateDelivering, false)
	if _, err := j.Settle(Decision{Action: ActionFail, Reason: "no"}, t0); err != nil || j.Active() || j.Reason != "no" {
		t.Errorf("Settle(fail): %+v, %v", j, err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		result int
		class  ResultClass
		reason string
	}{
		{0, ResultInitial, "initial value"},
		{1, ResultSuccess, "firmware updated successfully"},
		{2, ResultTerminal, "not enough flash memory for the new firmware package"},
		{3, ResultRetryable, "out of RAM during downloading process"},
		{4, ResultRetryable, "connection lost during downloading process"},
		{5, ResultRetryable, "integrity check failure for new downloaded package"},
		{6, ResultTerminal, "unsupported package type"},
		{7, ResultTerminal, "invalid URI"},
		{8, ResultTerminal, "firmware update failed"},
		{9, ResultTerminalUnlessOtherProtocol, "unsupported protocol"},
		{10, ResultCancelled, "firmware update cancelled"},
		{11, ResultDeferred, "firmware update deferred"},
		{12, ResultUnknown, "unknown update result 12"},
		{-1, ResultUnknown, "unknown update result -1"},
		{255, ResultUnknown, "unknown update result 255"},
	}
	for _, tc := range tests {
		reason, class := Reason(tc.result)
		if reason != tc.reason || class != tc.class {
			t.Errorf("Reason(%d) = %q, %s; want %q, %s", tc.result, reason, class, tc.reason, tc.class)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := DefaultPolicy()
	for attempt, want := range map[int]time.Duration{0: time.Minute, 1: time.Minute, 2: 2 * time.Minute,
		3: 4 * time.Minute, 6: 32 * time.Minute, 7: time.Hour, 1000: time.Hour} {
		if got := p.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func TestStepTimeout(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		step State
		size int64
		want time.Duration
	}{
		{StateDelivering, 1 << 20, 2048*time.Second + 5*time.Minute}, // 1 MiB at 512 B/s: 34 min + slack
		{StateDelivering, 1, time.Second + 5*time.Minute},
		{StateDelivering, 0, 5 * time.Minute},
		{StateWaiting, 1 << 20, 24*time.Hour + 5*time.Minute},
		{StateUpdating, 1 << 20, time.Hour + 5*time.Minute},
		{StateQueued, 1 << 20, 0},
		{StateSucceeded, 1 << 20, 0},
	}
	for _, tc := range tests {
		if got := p.StepTimeout(tc.step, tc.size); got != tc.want {
			t.Errorf("StepTimeout(%s, %d) = %s, want %s", tc.step, tc.size, got, tc.want)
		}
	}
	if d := p.StepTimeout(StateDelivering, 1<<20); d < 30*time.Minute {
		t.Errorf("1 MiB over NB-IoT gets only %s", d)
	}
}

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name    string
		attempt int
		result  int
		untried bool
		action  Action
		retryAt time.Time
	}{
		{"connection lost, first attempt", 1, 4, false, ActionRetry, t0.Add(time.Minute)},
		{"integrity, second attempt", 2, 5, false, ActionRetry, t0.Add(2 * time.Minute)},
		{"out of RAM, last attempt", 3, 3, false, ActionFail, time.Time{}},
		{"no flash", 1, 2, true, ActionFail, time.Time{}},
		{"bad package", 1, 6, false, ActionFail, time.Time{}},
		{"bad URI", 1, 7, false, ActionFail, time.Time{}},
		{"update failed", 1, 8, false, ActionFail, time.Time{}},
		{"protocol, another left", 3, 9, true, ActionRetry, t0},
		{"protocol, none left", 1, 9, false, ActionFail, time.Time{}},
		{"cancelled", 1, 10, false, ActionCancel, time.Time{}},
		{"deferred", 2, 11, false, ActionWait, t0.Add(2 * time.Minute)},
		{"initial", 1, 0, false, ActionWait, time.Time{}},
		{"success", 1, 1, false, ActionSucceed, time.Time{}},
		{"unknown", 1, 42, false, ActionFail, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := jobIn(StateDelivering, false)
			j.Attempt = tc.attempt
			d := p.Decide(j, tc.result, tc.untried, t0)
			if d.Action != tc.action || !d.RetryAt.Equal(tc.retryAt) || d.Reason == "" {
				t.Errorf("Decide = %+v, want %s at %s", d, tc.action, tc.retryAt)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		strict  bool
		version string
		changed bool
		result  int
		state   State
		reason  string
	}{
		{"result 1, version matches", false, "1.4.2", true, 1, StateSucceeded, ""},
		{"result 0 after reset, version matches", false, "1.4.2", true, 0, StateSucceeded, ""},
		{"prefix is not a match", false, "1.4.20", true, 1, StateFailed, `device reports version "1.4.20", want "1.4.2"`},
		{"shorter is not a match", false, "1.4", true, 1, StateFailed, `device reports version "1.4", want "1.4.2"`},
		{"case matters", false, "V1.4.2", true, 1, StateFailed, `device reports version "V1.4.2", want "1.4.2"`},
		{"version never changes", false, "1.3.0", false, 1, StateSucceeded, NotConfirmed},
		{"version never changes, strict", true, "1.3.0", false, 1, StateFailed, NotConfirmed + " (strict policy)"},
		{"result 0 and old version", false, "1.3.0", false, 0, StateFailed, `no sign of the update: result 0 and version still "1.3.0"`},
		{"update failed", false, "1.4.2", true, 8, StateFailed, "firmware update failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.Strict = tc.strict
			state, reason := p.Verify(jobIn(StateVerifying, false), tc.version, tc.changed, tc.result)
			if state != tc.state || reason != tc.reason {
				t.Errorf("Verify = %s, %q; want %s, %q", state, reason, tc.state, tc.reason)
			}
		})
	}
}

// TestAway: errors after which the job waits for the device (away: in StateWaiting when nothing
// was sent; transient: polling in its step) rather than failing.
func TestAway(t *testing.T) {
	for _, tc := range []struct {
		name            string
		err             error
		away, transient bool
	}{
		{"offline", fmt.Errorf("read /5/0: %w", dm.ErrOffline), true, false},
		{"asleep", dm.ErrAsleep, true, false},
		{"not registered", fmt.Errorf("device x: %w", registration.ErrNotFound), true, false},
		// A DTLS device that rebooted into the new firmware: its session is gone until it
		// handshakes again (in a cluster, often at another node, which takes the job over).
		// It is still registered, so the step polls rather than moving to waiting.
		{"no dtls session", fmt.Errorf("read /5/0: read /5/0 on dev: %w", transport.ErrNoSession), false, true},
		{"timeout", dm.ErrTimeout, false, true},
		{"device error", &dm.DeviceError{Code: "4.05"}, false, false},
		{"other", errors.New("disk on fire"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := away(tc.err); got != tc.away {
				t.Errorf("away(%v) = %v, want %v", tc.err, got, tc.away)
			}
			if got := transient(tc.err); got != tc.transient {
				t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.transient)
			}
		})
	}
}
