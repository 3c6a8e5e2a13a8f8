package campaigns_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

func TestProgressOf(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0.Add(10 * time.Minute)
	threeWaves := plan.Plan{Waves: []plan.Wave{
		{Count: 2, Gate: plan.Gate{SuccessPercent: 50}, Soak: time.Hour},
		{Percent: 50, Gate: plan.Gate{Manual: true}},
		{Percent: 100},
	}}
	// mem makes n members of wave w in state s with reason r.
	mem := func(w, n int, s campaigns.MemberState, r string) []campaigns.Member {
		out := make([]campaigns.Member, n)
		for i := range out {
			out[i] = campaigns.Member{Endpoint: fmt.Sprintf("w%d-%s-%d", w, s, i), Wave: w, State: s, Reason: r}
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
	running := func(wave int, gates ...plan.GateState) *campaigns.Campaign {
		c := &campaigns.Campaign{Plan: threeWaves, State: campaigns.StateRunning, Wave: wave, StartedAt: t0,
			Gates: make([]plan.GateState, 3)}
		copy(c.Gates, gates)
		for i := 0; i <= wave; i++ {
			c.WaveStarted = append(c.WaveStarted, t0.Add(time.Duration(i)*time.Minute))
		}
		return c
	}
	type waveWant struct {
		size int
		gate plan.GateStatus
	}
	for _, tt := range []struct {
		name       string
		c          *campaigns.Campaign
		members    []campaigns.Member
		total      int
		counts     plan.Counts
		waves      []waveWant
		success    float64
		failure    float64
		throughput float64
		eta        time.Time
		reasons    []campaigns.ReasonCount
	}{
		{
			name:    "draft: sizes, no gate, no rates",
			c:       &campaigns.Campaign{Plan: threeWaves, State: campaigns.StateDraft, Gates: make([]plan.GateState, 3)},
			members: join(mem(0, 2, campaigns.MemberPending, ""), mem(1, 3, campaigns.MemberPending, ""), mem(2, 5, campaigns.MemberPending, "")),
			total:   10, counts: plan.Counts{Pending: 10},
			waves:   []waveWant{{2, ""}, {3, ""}, {5, ""}},
			reasons: []campaigns.ReasonCount{},
		},
		{
			name: "first wave running: rates of finished devices, throughput and ETA",
			c:    running(0),
			members: join(mem(0, 1, campaigns.MemberSucceeded, ""), mem(0, 1, campaigns.MemberInProgress, ""),
				mem(1, 3, campaigns.MemberPending, ""), mem(2, 5, campaigns.MemberPending, "")),
			total: 10, counts: plan.Counts{Pending: 8, InProgress: 1, Succeeded: 1},
			// 1 of 2 succeeded meets the 50% gate: the soak starts now.
			waves:   []waveWant{{2, plan.GateSoaking}, {3, ""}, {5, ""}},
			success: 1, throughput: 0.1, eta: now.Add(90 * time.Minute),
			reasons: []campaigns.ReasonCount{},
		},
		{
			name: "failures ranked by count, then by reason; up to date counts as success",
			c:    running(1, plan.GateState{ReachedAt: t0.Add(-2 * time.Hour)}),
			members: join(mem(0, 2, campaigns.MemberUpToDate, ""),
				mem(1, 1, campaigns.MemberFailed, "integrity check failure"),
				mem(1, 2, campaigns.MemberFailed, "out of flash"),
				mem(1, 1, campaigns.MemberFailed, ""),
				mem(1, 1, campaigns.MemberCancelled, "cancelled by admin"),
				mem(1, 1, campaigns.MemberPending, "attempt 1 failed (timeout); retrying")),
			total: 8, counts: plan.Counts{Pending: 1, UpToDate: 2, Failed: 4, Cancelled: 1},
			waves:   []waveWant{{2, plan.GateOpen}, {6, plan.GateRunning}, {0, ""}},
			success: 2.0 / 7, failure: 4.0 / 7, throughput: 0.7, eta: now.Add(time.Minute * 10 / 7),
			reasons: []campaigns.ReasonCount{{"out of flash", 2}, {"integrity check failure", 1}, {"no reason given", 1}},
		},
		{
			name: "paused: no ETA",
			c: func() *campaigns.Campaign {
				c := running(0)
				c.State = campaigns.StatePaused
				return c
			}(),
			members: join(mem(0, 1, campaigns.MemberSucceeded, ""), mem(0, 1, campaigns.MemberPending, "")),
			total:   2, counts: plan.Counts{Pending: 1, Succeeded: 1},
			waves:   []waveWant{{2, plan.GateSoaking}, {0, ""}, {0, ""}},
			success: 1, throughput: 0.1,
			reasons: []campaigns.ReasonCount{},
		},
		{
			name: "ended: throughput up to the end, no ETA",
			c: func() *campaigns.Campaign {
				c := running(0)
				c.State, c.EndedAt = campaigns.StateAborted, t0.Add(2*time.Minute)
				return c
			}(),
			members: join(mem(0, 1, campaigns.MemberSucceeded, ""), mem(0, 1, campaigns.MemberFailed, "boom")),
			total:   2, counts: plan.Counts{Succeeded: 1, Failed: 1},
			waves:   []waveWant{{2, plan.GateSoaking}, {0, ""}, {0, ""}},
			success: 0.5, failure: 0.5, throughput: 1,
			reasons: []campaigns.ReasonCount{{"boom", 1}},
		},
		{
			name: "a wave awaiting approval",
			c:    running(1, plan.GateState{ReachedAt: t0.Add(-2 * time.Hour)}),
			members: join(mem(0, 2, campaigns.MemberSucceeded, ""), mem(1, 3, campaigns.MemberSucceeded, ""),
				mem(2, 5, campaigns.MemberPending, "")),
			total: 10, counts: plan.Counts{Pending: 5, Succeeded: 5},
			waves:   []waveWant{{2, plan.GateOpen}, {3, plan.GateAwaitingApproval}, {5, ""}},
			success: 1, throughput: 0.5, eta: now.Add(10 * time.Minute),
			reasons: []campaigns.ReasonCount{},
		},
		{
			name:    "only the ten most frequent reasons",
			c:       running(0),
			members: manyReasons(12),
			total:   12 * 13 / 2, counts: plan.Counts{Failed: 12 * 13 / 2},
			waves:   []waveWant{{12 * 13 / 2, plan.GateBlocked}, {0, ""}, {0, ""}},
			failure: 1, throughput: 7.8,
			reasons: func() []campaigns.ReasonCount {
				var out []campaigns.ReasonCount
				for n := 12; n > 2; n-- {
					out = append(out, campaigns.ReasonCount{Reason: fmt.Sprintf("reason %02d", n), Count: n})
				}
				return out
			}(),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := campaigns.ProgressOf(tt.c, tt.members, now)
			if p.Total != tt.total || p.Counts != tt.counts {
				t.Fatalf("total %d counts %+v, want %d %+v", p.Total, p.Counts, tt.total, tt.counts)
			}
			if len(p.Waves) != len(tt.waves) {
				t.Fatalf("%d waves, want %d", len(p.Waves), len(tt.waves))
			}
			for i, w := range tt.waves {
				got := p.Waves[i]
				if got.Counts.Total() != w.size || got.Gate != w.gate {
					t.Errorf("wave %d: size %d gate %q (%s), want %d %q", i+1, got.Counts.Total(), got.Gate, got.GateReason, w.size, w.gate)
				}
				if started := i < len(tt.c.WaveStarted); started != !got.StartedAt.IsZero() || started && got.GateReason == "" {
					t.Errorf("wave %d: started at %v, gate reason %q", i+1, got.StartedAt, got.GateReason)
				}
			}
			if !near(p.SuccessRate, tt.success) || !near(p.FailureRate, tt.failure) || !near(p.ThroughputPerMinute, tt.throughput) {
				t.Errorf("success %v failure %v throughput %v, want %v %v %v", p.SuccessRate, p.FailureRate, p.ThroughputPerMinute,
					tt.success, tt.failure, tt.throughput)
			}
			if d := p.ETA.Sub(tt.eta); d < -time.Second || d > time.Second || p.ETA.IsZero() != tt.eta.IsZero() {
				t.Errorf("eta %v, want %v", p.ETA, tt.eta)
			}
			if !reflect.DeepEqual(p.FailureReasons, tt.reasons) {
				t.Errorf("reasons %v, want %v", p.FailureReasons, tt.reasons)
			}
		})
	}
}

// manyReasons fails n reasons, reason k on k devices, all in the first wave.
func manyReasons(n int) []campaigns.Member {
	var out []campaigns.Member
	for k := 1; k <= n; k++ {
		for i := range k {
			out = append(out, campaigns.Member{Endpoint: fmt.Sprintf("r%02d-%d", k, i), State: campaigns.MemberFailed,
				Reason: fmt.Sprintf("reason %02d", k)})
		}
	}
	return out
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
