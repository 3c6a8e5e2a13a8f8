package plan

import (
	"testing"
	"time"
)

// clock is a test clock the pacer reads.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestPacerMaxStartsPerMinute(t *testing.T) {
	c := &clock{t: t0}
	p := NewPacer(Pacing{MaxStartsPerMinute: 5}, c.now, nil)
	var starts []time.Time
	// A driver asking every 7 s with endless demand, for 10 simulated minutes.
	for c.t.Before(t0.Add(10 * time.Minute)) {
		b := p.Budget(Load{})
		n := 0
		for b.Take(nil) {
			n++
		}
		if n > 0 {
			p.Started(n)
			for range n {
				starts = append(starts, c.t)
			}
		} else if b.RetryAt.IsZero() || !b.RetryAt.After(c.t) {
			t.Fatalf("at %v: no budget and RetryAt %v", c.t, b.RetryAt)
		}
		c.t = c.t.Add(7 * time.Second)
	}
	for i, s := range starts {
		in := 0
		for _, u := range starts[i:] {
			if u.Before(s.Add(time.Minute)) {
				in++
			}
		}
		if in > 5 {
			t.Fatalf("%d starts in the minute from %v", in, s)
		}
	}
	if len(starts) < 45 || len(starts) > 50 {
		t.Errorf("%d starts in 10 minutes, want about 50", len(starts))
	}
}

func TestPacerBudget(t *testing.T) {
	c := &clock{t: t0}
	tests := []struct {
		name   string
		cfg    Pacing
		recent []time.Time
		load   Load
		want   int
		rate   int
	}{
		{"unlimited", Pacing{}, nil, Load{InFlight: 1000}, Unlimited, 0},
		{"concurrency", Pacing{MaxConcurrent: 10}, nil, Load{InFlight: 7}, 3, 0},
		{"concurrency full", Pacing{MaxConcurrent: 10}, nil, Load{InFlight: 12}, 0, 0},
		{"rate after restart", Pacing{MaxStartsPerMinute: 5}, []time.Time{t0.Add(-30 * time.Second), t0.Add(-90 * time.Second), t0.Add(-10 * time.Second)}, Load{}, 3, 5},
		{"ramp base", Pacing{Ramp: Ramp{Base: 2, Factor: 2, Every: 10}}, nil, Load{Successes: 9}, 2, 2},
		{"ramp doubled twice", Pacing{Ramp: Ramp{Base: 2, Factor: 2, Every: 10}}, nil, Load{Successes: 25}, 8, 8},
		{"ramp capped", Pacing{MaxStartsPerMinute: 20, Ramp: Ramp{Base: 2, Factor: 2, Every: 10}}, nil, Load{Successes: 1000}, 20, 20},
		{"ramp fraction", Pacing{Ramp: Ramp{Base: 0.5, Factor: 1.5, Every: 1}}, nil, Load{}, 1, 1},
		{"ramp uncapped overflow", Pacing{Ramp: Ramp{Base: 1, Factor: 10, Every: 1}}, nil, Load{Successes: 100}, Unlimited, 0},
		{"least wins", Pacing{MaxConcurrent: 4, MaxStartsPerMinute: 5}, nil, Load{InFlight: 1}, 3, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewPacer(tt.cfg, c.now, tt.recent).Budget(tt.load)
			if b.N != tt.want || b.Rate != tt.rate {
				t.Errorf("N=%d Rate=%d, want %d %d", b.N, b.Rate, tt.want, tt.rate)
			}
		})
	}
}

func TestPacerRetryAt(t *testing.T) {
	c := &clock{t: t0}
	p := NewPacer(Pacing{MaxStartsPerMinute: 2}, c.now, nil)
	p.Started(1)
	c.t = t0.Add(20 * time.Second)
	p.Started(1)
	b := p.Budget(Load{})
	if b.N != 0 || !b.RetryAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("N=%d RetryAt=%v, want 0 and %v", b.N, b.RetryAt, t0.Add(time.Minute))
	}
	c.t = b.RetryAt
	if b := p.Budget(Load{}); b.N != 1 {
		t.Errorf("at RetryAt N=%d, want 1", b.N)
	}
}

func TestBudgetPerLabelCap(t *testing.T) {
	c := &clock{t: t0}
	p := NewPacer(Pacing{MaxConcurrent: 10, PerLabelCap: LabelCap{Key: "cell", Max: 2}}, c.now, nil)
	b := p.Budget(Load{InFlight: 1, InFlightByLabel: map[string]int{"c1": 1}})
	cell := func(v string) map[string]string { return map[string]string{"cell": v} }
	got := []bool{
		b.Take(cell("c1")), // 2nd in c1
		b.Take(cell("c1")), // 3rd: over the cap
		b.Take(cell("c2")),
		b.Take(cell("c2")),
		b.Take(cell("c2")),
		b.Take(nil), // no cell: not capped
	}
	want := []bool{true, false, true, true, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("take %d = %v, want %v", i, got[i], want[i])
		}
	}
	if b.N != 5 {
		t.Errorf("N = %d after 4 takes of 9, want 5", b.N)
	}
}
