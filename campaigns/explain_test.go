package campaigns_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// What Resume will do, said from the campaign's own next decision, and the gate a paused
// campaign shows. The first case is issue 15's: a campaign a threshold paused at 100 % failures
// showed its gate "open" and "wave 2 may start".
func TestResumeEffectAndHeldGate(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0.Add(10 * time.Minute)
	twoWaves := func(gate plan.Gate) plan.Plan {
		return plan.Plan{Waves: []plan.Wave{{Count: 10, Gate: gate}, {Percent: 100}},
			WaveThreshold: plan.FailureThreshold{Percent: 10, MinDevices: 5, Action: plan.ActionPause}}
	}
	mem := func(w, n int, s campaigns.MemberState) []campaigns.Member {
		out := make([]campaigns.Member, n)
		for i := range out {
			out[i] = campaigns.Member{Endpoint: fmt.Sprintf("w%d-%s-%d", w, s, i), Wave: w, State: s}
		}
		return out
	}
	join := func(parts ...[]campaigns.Member) []campaigns.Member {
		var out []campaigns.Member
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	paused := func(p plan.Plan, reason string) *campaigns.Campaign {
		return &campaigns.Campaign{Plan: p, State: campaigns.StatePaused, Reason: reason, StartedAt: t0,
			Gates: make([]plan.GateState, len(p.Waves)), WaveStarted: []time.Time{t0}}
	}
	for _, tt := range []struct {
		name       string
		c          *campaigns.Campaign
		members    []campaigns.Member
		effect     []string // substrings of ResumeEffect ("" alone: it is empty)
		gate       plan.GateStatus
		gateReason []string
		notInGate  string
	}{
		{
			name:    "paused by the threshold at 100 % failures: resume pauses again; the gate is held",
			c:       paused(twoWaves(plan.Gate{}), "wave 1: 10 of 10 finished devices failed"),
			members: join(mem(0, 10, campaigns.MemberFailed), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will pause the campaign again at once", "10 of 10 finished devices failed (100.0%)", "Raise the failure threshold"},
			gate:    plan.GateHeld, gateReason: []string{"wave 1: 10 of 10 finished devices failed (100.0%), over the 10% threshold"}, notInGate: "may start",
		},
		{
			name:    "paused by an operator after wave 1 finished: resume starts wave 2",
			c:       paused(twoWaves(plan.Gate{}), "paused by alice"),
			members: join(mem(0, 10, campaigns.MemberSucceeded), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will start wave 2 (10 devices)"},
			gate:    plan.GateOpen, gateReason: []string{"wave 2 may start once the campaign resumes"},
		},
		{
			name:    "paused in the middle of wave 1: resume starts its pending devices",
			c:       paused(twoWaves(plan.Gate{}), "paused by alice"),
			members: join(mem(0, 5, campaigns.MemberSucceeded), mem(0, 5, campaigns.MemberPending), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will start updating the 5 pending devices of wave 1"},
			gate:    plan.GateRunning,
		},
		{
			name:    "paused with updates in flight: they finish",
			c:       paused(twoWaves(plan.Gate{}), "paused by alice"),
			members: join(mem(0, 7, campaigns.MemberSucceeded), mem(0, 3, campaigns.MemberInProgress), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will let the 3 devices in progress finish", "waiting for every device has finished"},
			gate:    plan.GateRunning,
		},
		{
			name:    "a manual gate: resume waits for approval",
			c:       paused(twoWaves(plan.Gate{Manual: true}), "paused by alice"),
			members: join(mem(0, 10, campaigns.MemberSucceeded), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will wait for an operator to approve wave 2"},
			gate:    plan.GateAwaitingApproval,
		},
		{
			name:    "a gate that can no longer be met: resume ends the campaign as failed",
			c:       paused(plan.Plan{Waves: []plan.Wave{{Count: 10, Gate: plan.Gate{SuccessPercent: 90}}, {Percent: 100}}}, "paused by alice"),
			members: join(mem(0, 5, campaigns.MemberSucceeded), mem(0, 5, campaigns.MemberCancelled), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will end the campaign as failed", "below the gate's 90% success"},
			gate:    plan.GateBlocked,
		},
		{
			name: "paused before it started: resume starts wave 1",
			c: &campaigns.Campaign{Plan: twoWaves(plan.Gate{}), State: campaigns.StatePaused, Reason: "paused by alice",
				Gates: make([]plan.GateState, 2)},
			members: join(mem(0, 10, campaigns.MemberPending), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{"Resume will start the campaign: wave 1 (10 devices)"},
		},
		{
			name: "running: nothing to resume",
			c: &campaigns.Campaign{Plan: twoWaves(plan.Gate{}), State: campaigns.StateRunning, StartedAt: t0,
				Gates: make([]plan.GateState, 2), WaveStarted: []time.Time{t0}},
			members: join(mem(0, 5, campaigns.MemberSucceeded), mem(0, 5, campaigns.MemberPending), mem(1, 10, campaigns.MemberPending)),
			effect:  []string{""},
			gate:    plan.GateRunning,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.c.Clone()
			got := campaigns.ResumeEffect(tt.c, tt.members, now)
			for _, want := range tt.effect {
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("ResumeEffect = %q, want it to say %q", got, want)
				}
			}
			if tt.c.State != before.State || tt.c.Wave != before.Wave || len(tt.c.WaveStarted) != len(before.WaveStarted) {
				t.Errorf("ResumeEffect changed the campaign: %+v", tt.c)
			}
			p := campaigns.ProgressOf(tt.c, tt.members, now)
			if tt.gate == "" {
				if len(p.Waves) > 0 && p.Waves[0].Gate != "" {
					t.Errorf("wave 1 gate %s before the campaign started", p.Waves[0].Gate)
				}
				return
			}
			w := p.Waves[tt.c.Wave]
			if w.Gate != tt.gate {
				t.Errorf("gate %s (%s), want %s", w.Gate, w.GateReason, tt.gate)
			}
			for _, want := range tt.gateReason {
				if !strings.Contains(w.GateReason, want) {
					t.Errorf("gate reason %q lacks %q", w.GateReason, want)
				}
			}
			if tt.notInGate != "" && strings.Contains(w.GateReason, tt.notInGate) {
				t.Errorf("gate reason %q says %q", w.GateReason, tt.notInGate)
			}
		})
	}
}

func TestHistoryOf(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	members := []campaigns.Member{
		{Endpoint: "a", State: campaigns.MemberSucceeded, StartedAt: at(10), EndedAt: at(20)},
		{Endpoint: "b", State: campaigns.MemberFailed, StartedAt: at(10), EndedAt: at(30)},
		{Endpoint: "c", State: campaigns.MemberInProgress, StartedAt: at(25)},
		{Endpoint: "d", State: campaigns.MemberPending},
		{Endpoint: "e", State: campaigns.MemberUpToDate, EndedAt: at(5), UpdatedAt: at(5)},
	}
	waves := []plan.Wave{{Percent: 100}}
	running := &campaigns.Campaign{Plan: plan.Plan{Waves: waves}, State: campaigns.StateRunning, CreatedAt: t0.Add(-time.Hour), StartedAt: t0}
	ended := &campaigns.Campaign{Plan: plan.Plan{Waves: waves}, State: campaigns.StateCompleted, CreatedAt: t0, StartedAt: t0, EndedAt: at(40)}
	for _, tt := range []struct {
		name    string
		c       *campaigns.Campaign
		now     time.Time
		max     int
		step    time.Duration
		samples int
		want    map[int]plan.Counts // sample index -> counts
	}{
		{
			name: "running, one sample a second up to now", c: running, now: at(40), max: 500, step: time.Second, samples: 41,
			want: map[int]plan.Counts{
				0:  {Pending: 5},
				5:  {Pending: 4, UpToDate: 1},
				10: {Pending: 2, InProgress: 2, UpToDate: 1},
				20: {Pending: 2, InProgress: 1, Succeeded: 1, UpToDate: 1},
				25: {Pending: 1, InProgress: 2, Succeeded: 1, UpToDate: 1},
				40: {Pending: 1, InProgress: 1, Succeeded: 1, Failed: 1, UpToDate: 1},
			},
		},
		{
			name: "bounded: a day-long campaign in at most 100 samples", c: running, now: t0.Add(24 * time.Hour), max: 100,
			step: 873 * time.Second, samples: 100, // ceil(86400/99) = 872.7 s, in whole seconds
			want: map[int]plan.Counts{0: {Pending: 5}, 99: {Pending: 1, InProgress: 1, Succeeded: 1, Failed: 1, UpToDate: 1}},
		},
		{
			name: "ended: it stops at the end, not now", c: ended, now: at(4000), max: 500, step: time.Second, samples: 41,
			want: map[int]plan.Counts{40: {Pending: 1, InProgress: 1, Succeeded: 1, Failed: 1, UpToDate: 1}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := campaigns.HistoryOf(tt.c, members, tt.now, tt.max)
			if h.Step != tt.step || len(h.Samples) != tt.samples || len(h.Samples) > tt.max {
				t.Fatalf("step %v, %d samples; want %v, %d (at most %d)", h.Step, len(h.Samples), tt.step, tt.samples, tt.max)
			}
			if !h.Samples[0].At.Equal(t0) {
				t.Errorf("first sample at %v, want the start %v", h.Samples[0].At, t0)
			}
			for i := 1; i < len(h.Samples); i++ {
				if !h.Samples[i].At.After(h.Samples[i-1].At) {
					t.Fatalf("sample %d at %v is not after %v", i, h.Samples[i].At, h.Samples[i-1].At)
				}
				if n := h.Samples[i].Counts.Total(); n != len(members) {
					t.Fatalf("sample %d counts %d members, want %d", i, n, len(members))
				}
			}
			for i, want := range tt.want {
				if got := h.Samples[i].Counts; got != want {
					t.Errorf("sample %d (%v): %+v, want %+v", i, h.Samples[i].At.Sub(t0), got, want)
				}
			}
		})
	}
}
