package plan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func waves(pcts ...float64) []Wave {
	ws := make([]Wave, len(pcts))
	for i, p := range pcts {
		ws[i] = Wave{Percent: p}
	}
	return ws
}

func TestValidate(t *testing.T) {
	ok := Plan{Waves: waves(1, 10, 50, 100)}
	tests := []struct {
		name string
		edit func(p *Plan)
		want string // substring of the error; "" for a valid plan
	}{
		{"canary 1/10/50/100", func(p *Plan) {}, ""},
		{"count canary then percent", func(p *Plan) { p.Waves = []Wave{{Count: 10}, {Percent: 50}, {Percent: 100}} }, ""},
		{"no waves", func(p *Plan) { p.Waves = nil }, "waves: no waves"},
		{"last not 100", func(p *Plan) { p.Waves = waves(10, 90) }, "waves[1]: the last wave must be percent 100"},
		{"not monotonic", func(p *Plan) { p.Waves = waves(10, 50, 40, 100) }, "waves[2].percent: 40 is not above the 50 of waves[1]"},
		{"equal", func(p *Plan) { p.Waves = waves(50, 50, 100) }, "waves[1].percent: 50 is not above"},
		{"counts shrink", func(p *Plan) { p.Waves = []Wave{{Count: 50}, {Count: 20}, {Percent: 100}} }, "waves[1].count: 20 is not above the 50 of waves[0]"},
		{"both", func(p *Plan) { p.Waves[0].Count = 3 }, "waves[0]: both percent (1) and count (3) are set"},
		{"neither", func(p *Plan) { p.Waves[0].Percent = 0 }, "waves[0]: neither percent nor count"},
		{"over 100", func(p *Plan) { p.Waves[2].Percent = 150 }, "waves[2].percent: 150 is outside 0..100"},
		{"negative count", func(p *Plan) { p.Waves[0] = Wave{Count: -1} }, "waves[0].count: -1 is negative"},
		{"gate percent", func(p *Plan) { p.Waves[0].Gate.SuccessPercent = 101 }, "waves[0].gate.success_percent: 101 is outside"},
		{"negative soak", func(p *Plan) { p.Waves[0].Soak = -time.Second }, "waves[0].soak: -1s is negative"},
		{"gate on last", func(p *Plan) { p.Waves[3].Gate.Manual = true }, "waves[3].gate: the last wave has no next wave"},
		{"wave threshold", func(p *Plan) { p.Waves[1].Threshold = &FailureThreshold{Percent: -1, Action: "stop"} }, "waves[1].threshold.percent: -1 is outside 0..100; waves[1].threshold.action: \"stop\" is not pause or abort"},
		{"threshold no action", func(p *Plan) { p.WaveThreshold = FailureThreshold{Percent: 10, MinDevices: 10} }, "wave_threshold.action: missing"},
		{"overall negative", func(p *Plan) { p.OverallThreshold = FailureThreshold{Count: -2, Action: ActionAbort} }, "overall_threshold.count: -2 is negative"},
		{"min without percent", func(p *Plan) { p.OverallThreshold = FailureThreshold{MinDevices: 5} }, "overall_threshold.min_devices: set without percent"},
		{"pacing", func(p *Plan) { p.Pacing = Pacing{MaxConcurrent: -1, MaxStartsPerMinute: -5} }, "pacing.max_concurrent: -1 is negative; pacing.max_starts_per_minute: -5 is negative"},
		{"ramp", func(p *Plan) { p.Pacing.Ramp = Ramp{Base: 0, Factor: 0.5, Every: 0} }, "pacing.ramp.base: 0: must be a positive"},
		{"label cap", func(p *Plan) { p.Pacing.PerLabelCap = LabelCap{Max: 3} }, "pacing.per_label_cap.key: missing"},
		{"retries", func(p *Plan) { p.Retries = Retries{Retryable: -1, Terminal: 1000} }, "retries.retryable: -1 is outside 0..100; retries.terminal: 1000 is outside"},
		{"timeout", func(p *Plan) { p.Retries.InProgressTimeout = -time.Minute }, "retries.in_progress_timeout: -1m0s is negative"},
		{"end before start", func(p *Plan) {
			p.Schedule = Schedule{StartAt: t0.Add(2 * time.Hour), EndAt: t0.Add(time.Hour), EndAction: EndStopStarting}
		}, "schedule.end_at: 2026-03-01T13:00:00Z is not after start_at 2026-03-01T14:00:00Z"},
		{"end passed", func(p *Plan) { p.Schedule = Schedule{EndAt: t0.Add(-time.Hour), EndAction: EndStopStarting} }, "schedule.end_at: 2026-03-01T11:00:00Z has already passed"},
		{"end action missing", func(p *Plan) { p.Schedule = Schedule{EndAt: t0.Add(time.Hour)} }, "schedule.end_action: missing"},
		{"end action unknown", func(p *Plan) { p.Schedule.EndAction = "explode" }, `schedule.end_action: "explode" is not`},
		{"window ok", func(p *Plan) {
			p.Schedule.Windows = []Window{{Cron: "0 2 * * *", Duration: 2 * time.Hour, TimeZone: "Europe/Berlin"}}
		}, ""},
		{"window never", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "0 0 30 2 *", Duration: time.Hour}} }, `schedule.windows[0].cron: "0 0 30 2 *" never fires within a year`},
		{"window zone", func(p *Plan) {
			p.Schedule.Windows = []Window{{Cron: "@daily", Duration: time.Hour, TimeZone: "Mars/Olympus"}}
		}, `schedule.windows[0]: time_zone: unknown time zone "Mars/Olympus"`},
		{"window local", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "@daily", Duration: time.Hour, TimeZone: "Local"}} }, "depends on the machine"},
		{"window cron", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "0 25 * * *", Duration: time.Hour}} }, `schedule.windows[0]: cron: "0 25 * * *"`},
		{"window every", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "@every 1h", Duration: time.Hour}} }, "@every has no fixed opening times"},
		{"window tz prefix", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "CRON_TZ=UTC 0 1 * * *", Duration: time.Hour}} }, "give the zone in time_zone"},
		{"window duration", func(p *Plan) { p.Schedule.Windows = []Window{{Cron: "@daily", Duration: 0}} }, "schedule.windows[0]: duration: 0s: must be positive"},
		{"window before end", func(p *Plan) {
			// Sundays 02:00 UTC only; 1 March 2026 is a Sunday whose window closed before 12:00.
			p.Schedule = Schedule{StartAt: t0, EndAt: t0.Add(6 * time.Hour), EndAction: EndCancelInFlight,
				Windows: []Window{{Cron: "0 2 * * 0", Duration: time.Hour}}}
		}, "schedule.windows: no window opens between 2026-03-01T12:00:00Z and end_at 2026-03-01T18:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			p.Waves = slices.Clone(ok.Waves)
			tt.edit(&p)
			err := Validate(p, t0)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateJoinsEveryProblem(t *testing.T) {
	err := Validate(Plan{Waves: waves(50, 20), Pacing: Pacing{MaxConcurrent: -1}}, t0)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("err = %v, want 3 problems", err)
	}
	want := "plan: waves[1].percent: 20 is not above the 50 of waves[0]; waves are cumulative and must grow; " +
		"waves[1]: the last wave must be percent 100, so that every device is covered; pacing.max_concurrent: -1 is negative"
	if err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		n     int
		waves []Wave
		want  []int
	}{
		{500, waves(2, 20, 100), []int{10, 90, 400}},
		{1000, waves(1, 10, 50, 100), []int{10, 90, 400, 500}},
		{15, waves(10, 100), []int{2, 13}},            // 1.5 rounds up
		{3, waves(1, 10, 50, 100), []int{1, 0, 1, 1}}, // the canary gets one; 10% of 3 is still 1
		{0, waves(1, 100), []int{0, 0}},
		{100, []Wave{{Count: 5}, {Count: 50}, {Percent: 100}}, []int{5, 45, 50}},
		{30, []Wave{{Count: 50}, {Percent: 100}}, []int{30, 0}},
		{1000, []Wave{{Count: 200}, {Percent: 10}, {Percent: 100}}, []int{200, 0, 800}}, // a target below the covered share: empty wave
		{3, waves(33.333333333333336, 66.66666666666667, 100), []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v", tt.n, tt.waves), func(t *testing.T) {
			if got := Sizes(tt.n, Plan{Waves: tt.waves}); !slices.Equal(got, tt.want) {
				t.Errorf("Sizes = %v, want %v", got, tt.want)
			}
		})
	}
}

func fleet(n int) ([]string, func(string) map[string]string) {
	eps := make([]string, n)
	cells := map[string]map[string]string{}
	for i := range eps {
		eps[i] = fmt.Sprintf("urn:imei:35%013d", i)
		// Uneven cells: c0 holds half the fleet, c1 a quarter, c2..c4 the rest; every 10th has no cell.
		switch {
		case i%10 == 9:
			cells[eps[i]] = map[string]string{}
		case i%2 == 0:
			cells[eps[i]] = map[string]string{"cell": "c0"}
		case i%4 == 1:
			cells[eps[i]] = map[string]string{"cell": "c1"}
		default:
			cells[eps[i]] = map[string]string{"cell": fmt.Sprintf("c%d", 2+i%3)}
		}
	}
	return eps, func(ep string) map[string]string { return cells[ep] }
}

func TestAssignProperties(t *testing.T) {
	plans := map[string]Plan{
		"plain":  {Waves: waves(1, 10, 50, 100)},
		"spread": {Waves: waves(1, 10, 50, 100), SpreadBy: "cell"},
		"counts": {Waves: []Wave{{Count: 7}, {Percent: 30}, {Percent: 100}}, SpreadBy: "cell"},
	}
	for name, p := range plans {
		for _, n := range []int{1, 2, 37, 1000} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				eps, labels := fleet(n)
				got := Assign(eps, labels, p, "campaign-1")
				seen := map[string]int{}
				for i, w := range got {
					for _, ep := range w {
						if _, dup := seen[ep]; dup {
							t.Fatalf("%s is in waves %d and %d", ep, seen[ep], i)
						}
						seen[ep] = i
					}
				}
				if len(seen) != n {
					t.Fatalf("%d devices assigned, want %d", len(seen), n)
				}
				sizes := make([]int, len(got))
				for i, w := range got {
					sizes[i] = len(w)
				}
				if want := Sizes(n, p); !slices.Equal(sizes, want) {
					t.Errorf("sizes %v, want %v", sizes, want)
				}
				if p.Waves[0].Percent > 0 && len(got[0]) == 0 {
					t.Error("the canary wave is empty")
				}
				shuffled := append(slices.Clone(eps), eps[:n/3]...) // with duplicates, too
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				again := Assign(shuffled, labels, p, "campaign-1")
				for i := range got {
					if !slices.Equal(got[i], again[i]) {
						t.Fatalf("wave %d differs after shuffling", i)
					}
				}
				if n >= 37 {
					other := Assign(eps, labels, p, "campaign-2")
					if slices.Equal(other[0], got[0]) && slices.Equal(other[1], got[1]) {
						t.Error("another seed gives the same waves")
					}
				}
			})
		}
	}
}

func TestAssignSpreadsProportionally(t *testing.T) {
	eps, labels := fleet(1000)
	group := map[string]int{} // group sizes over the fleet
	for _, ep := range eps {
		group[labels(ep)["cell"]]++
	}
	p := Plan{Waves: waves(1, 10, 50, 100), SpreadBy: "cell"}
	covered := map[string]int{}
	total := 0
	for i, w := range Assign(eps, labels, p, "seed") {
		for _, ep := range w {
			covered[labels(ep)["cell"]]++
		}
		total += len(w)
		// Every prefix of the order holds each group within one device of its share.
		for g, size := range group {
			ideal := float64(size) * float64(total) / 1000
			if d := float64(covered[g]) - ideal; d > 1 || d < -1 {
				t.Errorf("after wave %d: group %q has %d devices, ideal %.1f", i+1, g, covered[g], ideal)
			}
		}
	}
	// The 10-device canary takes from every group of at least 10% of the fleet.
	canary := Assign(eps, labels, p, "seed")[0]
	cells := map[string]bool{}
	for _, ep := range canary {
		cells[labels(ep)["cell"]] = true
	}
	if !cells["c0"] || !cells["c1"] || !cells[""] {
		t.Errorf("canary cells %v miss a large group", cells)
	}
}

func counts(succeeded, failed, inProgress, pending int) Counts {
	return Counts{Succeeded: succeeded, Failed: failed, InProgress: inProgress, Pending: pending}
}

func TestCheckThresholds(t *testing.T) {
	pause10 := FailureThreshold{Percent: 10, MinDevices: 10, Action: ActionPause}
	tests := []struct {
		name   string
		p      Plan
		waves  []Counts
		action Action
		reason string
	}{
		{"below", Plan{WaveThreshold: pause10}, []Counts{counts(91, 9, 0, 0)}, ActionContinue, ""},
		{"exactly at is not over", Plan{WaveThreshold: pause10}, []Counts{counts(90, 10, 0, 0)}, ActionContinue, ""},
		{"over", Plan{WaveThreshold: pause10}, []Counts{counts(10, 0, 0, 0), counts(88, 12, 5, 0)}, ActionPause,
			"wave 2: 12 of 100 finished devices failed (12.0%), over the 10% threshold with at least 10 devices: pause"},
		{"too few finished", Plan{WaveThreshold: pause10}, []Counts{counts(3, 5, 2, 0)}, ActionContinue, ""},
		{"pending do not count", Plan{WaveThreshold: pause10}, []Counts{counts(9, 1, 0, 90)}, ActionContinue, ""},
		{"count", Plan{OverallThreshold: FailureThreshold{Count: 5, Action: ActionAbort}}, []Counts{counts(50, 2, 0, 0), counts(50, 3, 0, 0)}, ActionAbort,
			"overall: 5 devices failed, reaching the threshold of 5: abort"},
		{"wave override", Plan{WaveThreshold: pause10, Waves: []Wave{{Percent: 10, Threshold: &FailureThreshold{Count: 1, Action: ActionAbort}}, {Percent: 100}}},
			[]Counts{counts(9, 1, 0, 0)}, ActionAbort, "wave 1: 1 devices failed, reaching the threshold of 1: abort"},
		{"abort wins", Plan{WaveThreshold: pause10, OverallThreshold: FailureThreshold{Percent: 5, Action: ActionAbort}},
			[]Counts{counts(80, 20, 0, 0)}, ActionAbort, "wave 1: 20 of 100 finished devices failed (20.0%), over the 10% threshold with at least 10 devices: pause; overall: 20 of 100"},
		{"up to date is not an update", Plan{WaveThreshold: pause10}, []Counts{{Succeeded: 9, Failed: 1, UpToDate: 50}}, ActionContinue, ""},
		{"zero threshold never trips", Plan{}, []Counts{counts(0, 100, 0, 0)}, ActionContinue, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := CheckThresholds(tt.p, tt.waves)
			if v.Action != tt.action || !strings.HasPrefix(v.Reason, tt.reason) || (tt.reason == "") != (v.Reason == "") {
				t.Errorf("= %s %q\nwant %s %q", v.Action, v.Reason, tt.action, tt.reason)
			}
		})
	}
}

func TestAdvance(t *testing.T) {
	p := Plan{Waves: []Wave{
		{Percent: 10, Gate: Gate{SuccessPercent: 90}, Soak: time.Hour},
		{Percent: 50, Gate: Gate{Manual: true}},
		{Percent: 100},
	}}
	tests := []struct {
		name    string
		wave    int
		c       Counts
		st      GateState
		now     time.Time
		status  GateStatus
		reached bool
	}{
		{"running", 0, counts(5, 0, 5, 0), GateState{}, t0, GateRunning, false},
		{"reached, soak starts", 0, counts(9, 0, 1, 0), GateState{}, t0, GateSoaking, true},
		{"soaking", 0, counts(9, 0, 1, 0), GateState{ReachedAt: t0}, t0.Add(59 * time.Minute), GateSoaking, true},
		{"soak over", 0, counts(9, 0, 1, 0), GateState{ReachedAt: t0}, t0.Add(time.Hour), GateOpen, true},
		{"sticky after dip", 0, counts(8, 1, 1, 0), GateState{ReachedAt: t0}, t0.Add(time.Hour), GateOpen, false},
		{"blocked", 0, counts(8, 2, 0, 0), GateState{}, t0, GateBlocked, false},
		{"up to date counts", 0, Counts{UpToDate: 9, Failed: 1}, GateState{}, t0, GateSoaking, true},
		{"manual: wave unsettled", 1, counts(30, 0, 10, 0), GateState{}, t0, GateRunning, false},
		{"manual: settled", 1, counts(38, 2, 0, 0), GateState{}, t0, GateAwaitingApproval, true},
		{"manual: approved", 1, counts(38, 2, 0, 0), GateState{ReachedAt: t0, Approved: true}, t0, GateOpen, true},
		{"last: running", 2, counts(10, 0, 1, 0), GateState{}, t0, GateRunning, false},
		{"last: complete", 2, counts(10, 1, 0, 0), GateState{}, t0, GateOpen, true},
		{"empty wave", 0, Counts{}, GateState{}, t0, GateSoaking, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Advance(p, tt.wave, tt.c, tt.st, tt.now)
			if d.Status != tt.status || d.Reached != tt.reached {
				t.Errorf("= %s reached=%v (%s), want %s reached=%v", d.Status, d.Reached, d.Reason, tt.status, tt.reached)
			}
			if d.Status == GateSoaking && d.Until.IsZero() {
				t.Error("soaking without Until")
			}
		})
	}
	d := Advance(p, 0, counts(5, 0, 5, 0), GateState{}, t0)
	if want := "wave 1: 5 of 10 devices succeeded (50.0%), waiting for 90% success"; d.Reason != want {
		t.Errorf("reason %q, want %q", d.Reason, want)
	}
}
