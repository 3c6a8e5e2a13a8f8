package campaigns

import (
	"cmp"
	"slices"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
)

// MaxFailureReasons is how many distinct failure reasons Progress ranks.
const MaxFailureReasons = 10

// Progress is how far a campaign has come at one moment, as the API and the CLI show it.
type Progress struct {
	Total  int
	Counts plan.Counts // the whole campaign
	Waves  []WaveProgress
	// SuccessRate and FailureRate are shares of the finished devices (succeeded, up to date,
	// failed or cancelled): 0 while none has finished.
	SuccessRate float64
	FailureRate float64
	// ThroughputPerMinute is finished devices per minute since the campaign started, up to its
	// end when it has ended.
	ThroughputPerMinute float64
	// ETA is when the devices still pending or in progress should be done at that throughput;
	// zero unless the campaign is running (paused or waiting, no estimate holds).
	ETA time.Time
	// FailureReasons are the failed devices' reasons, most frequent first, at most MaxFailureReasons.
	FailureReasons []ReasonCount
}

// WaveProgress is one wave of Progress.
type WaveProgress struct {
	Counts    plan.Counts // Counts.Total() is the wave's size
	StartedAt time.Time   // zero before the wave started
	// Gate is the gate's status (plan.Advance) once the wave has started, "" before.
	Gate       plan.GateStatus
	GateReason string
}

// ReasonCount is one failure reason and how many devices failed with it.
type ReasonCount struct {
	Reason string
	Count  int
}

// noReason stands for a failed device whose job gave no reason.
const noReason = "no reason given"

// MemberSummary is all that progress needs of a campaign's members: their counts per wave and
// the failed ones' reasons. The store computes it in SQL (Store.MemberSummary), so that
// showing a campaign of 10,000 devices reads counts, not 10,000 rows.
type MemberSummary struct {
	Waves  []plan.Counts  // index: wave; members of a wave the plan lacks are not counted
	Failed map[string]int // failed members (of any wave) per reason ("" when the job gave none)
}

// Summarise is the MemberSummary of members, in a plan of waves waves.
func Summarise(members []Member, waves int) MemberSummary {
	s := MemberSummary{Waves: Counts(members, waves), Failed: map[string]int{}}
	for _, m := range members {
		if m.State == MemberFailed {
			s.Failed[m.Reason]++
		}
	}
	return s
}

// ProgressOf computes c's progress at now from its members (every member, whatever its state).
// It is pure: callers read the members and the clock.
func ProgressOf(c *Campaign, members []Member, now time.Time) Progress {
	return ProgressFrom(c, Summarise(members, len(c.Plan.Waves)), now)
}

// ProgressFrom computes c's progress at now from the summary of its members.
func ProgressFrom(c *Campaign, s MemberSummary, now time.Time) Progress {
	perWave := make([]plan.Counts, len(c.Plan.Waves))
	copy(perWave, s.Waves)
	p := Progress{Waves: make([]WaveProgress, len(perWave))}
	for i, wc := range perWave {
		w := WaveProgress{Counts: wc}
		if i < len(c.WaveStarted) {
			w.StartedAt = c.WaveStarted[i]
			var st plan.GateState
			if i < len(c.Gates) {
				st = c.Gates[i]
			}
			d := plan.Advance(c.Plan, i, wc, st, now)
			w.Gate, w.GateReason = d.Status, d.Reason
			if i == c.Wave {
				w.Gate, w.GateReason = heldGate(c, perWave, w.Gate, w.GateReason)
			}
		}
		p.Waves[i] = w
		p.Counts = addCounts(p.Counts, wc)
	}
	n := p.Counts
	p.Total = n.Total()
	ok := n.Succeeded + n.UpToDate
	finished := ok + n.Failed + n.Cancelled
	if finished > 0 {
		p.SuccessRate = float64(ok) / float64(finished)
		p.FailureRate = float64(n.Failed) / float64(finished)
	}
	end := now
	if c.State.Ended() && !c.EndedAt.IsZero() {
		end = c.EndedAt
	}
	if elapsed := end.Sub(c.StartedAt); !c.StartedAt.IsZero() && elapsed > 0 {
		p.ThroughputPerMinute = float64(finished) / elapsed.Minutes()
	}
	if left := n.Pending + n.InProgress; c.State == StateRunning && left > 0 && p.ThroughputPerMinute > 0 {
		p.ETA = now.Add(time.Duration(float64(left) / p.ThroughputPerMinute * float64(time.Minute)))
	}
	p.FailureReasons = failureReasons(s.Failed)
	return p
}

// heldGate corrects the current wave's gate for what the gate alone does not know: a failure
// threshold that trips holds the next wave whatever the gate's condition (the tick checks the
// thresholds first), and a paused campaign starts nothing until it resumes.
func heldGate(c *Campaign, perWave []plan.Counts, g plan.GateStatus, reason string) (plan.GateStatus, string) {
	if c.State == StateDraft || c.State == StateCompleted {
		return g, reason
	}
	if v := plan.CheckThresholds(c.Plan, perWave[:min(c.Wave+1, len(perWave))]); v.Action != plan.ActionContinue {
		return plan.GateHeld, v.Reason
	}
	if c.State == StatePaused && g == plan.GateOpen {
		return g, reason + " once the campaign resumes"
	}
	return g, reason
}

// failureReasons ranks the failed members' reasons, most frequent first (ties by reason).
func failureReasons(byReason map[string]int) []ReasonCount {
	merged := make(map[string]int, len(byReason))
	for r, n := range byReason {
		if r == "" {
			r = noReason
		}
		merged[r] += n
	}
	out := make([]ReasonCount, 0, len(merged))
	for r, n := range merged {
		out = append(out, ReasonCount{Reason: r, Count: n})
	}
	slices.SortFunc(out, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	return out[:min(len(out), MaxFailureReasons)]
}

// addCounts sums two counts (plan.Counts keeps its own sum unexported).
func addCounts(a, b plan.Counts) plan.Counts {
	return plan.Counts{Pending: a.Pending + b.Pending, InProgress: a.InProgress + b.InProgress,
		Succeeded: a.Succeeded + b.Succeeded, UpToDate: a.UpToDate + b.UpToDate, Failed: a.Failed + b.Failed,
		Cancelled: a.Cancelled + b.Cancelled}
}
