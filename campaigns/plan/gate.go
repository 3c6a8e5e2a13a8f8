package plan

import (
	"fmt"
	"time"
)

// GateStatus is where a wave stands with respect to the start of the next one.
type GateStatus string

// Gate statuses.
const (
	GateRunning          GateStatus = "running"           // the condition does not hold yet
	GateBlocked          GateStatus = "blocked"           // the wave is settled and the condition can no longer hold
	GateSoaking          GateStatus = "soaking"           // the condition holds; waiting out the soak until Until
	GateAwaitingApproval GateStatus = "awaiting-approval" // the condition holds, soak passed; an operator must approve
	GateOpen             GateStatus = "open"              // the next wave may start (last wave: the campaign is complete)
	// GateHeld: a failure threshold holds the campaign, whatever the gate's own condition says.
	// Advance never returns it; campaigns.ProgressOf shows it, so that a campaign a threshold
	// paused does not read "wave 2 may start".
	GateHeld GateStatus = "held"
)

// GateState is what the caller keeps about a wave's gate between decisions.
type GateState struct {
	ReachedAt time.Time // when a decision first said Reached; zero until then
	Approved  bool      // an operator approved the next wave
}

// GateDecision is the answer of Advance.
type GateDecision struct {
	Status GateStatus
	// Reached: the condition holds now. The caller stores now as ReachedAt the first time, and
	// the soak runs from then, even if a late retry makes the share dip again.
	Reached bool
	Until   time.Time // GateSoaking: when the soak ends
	Reason  string
}

// Advance decides whether the wave after wave (0-based) may start, from wave's counts. The
// condition is the gate's success share of the wave's devices (succeeded or already up to date),
// or with SuccessPercent 0 that every device has finished. An empty wave meets it at once. Then
// the soak must pass, then a manual gate needs approval (given earlier, it counts when the soak
// ends). For the last wave, GateOpen means every device has finished: the campaign is complete.
func Advance(p Plan, wave int, c Counts, st GateState, now time.Time) GateDecision {
	var g Gate
	var soak time.Duration
	last := wave >= len(p.Waves)-1
	if wave >= 0 && wave < len(p.Waves) && !last {
		g, soak = p.Waves[wave].Gate, p.Waves[wave].Soak
	}
	total, ok := c.Total(), c.Succeeded+c.UpToDate
	reached := c.Settled()
	cond := "every device has finished"
	if g.SuccessPercent > 0 && total > 0 {
		reached = float64(ok)*100 >= g.SuccessPercent*float64(total)
		cond = fmt.Sprintf("%v%% success", g.SuccessPercent)
	}
	share := 100.0
	if total > 0 {
		share = float64(ok) * 100 / float64(total)
	}
	progress := fmt.Sprintf("wave %d: %d of %d devices succeeded (%.1f%%)", wave+1, ok, total, share)
	d := GateDecision{Reached: reached}
	if last && !c.Settled() {
		// A retry can put devices of the last wave back in progress: it is done when settled.
		d.Status, d.Reason = GateRunning, progress+", waiting for "+cond
		return d
	}
	if !reached && st.ReachedAt.IsZero() {
		if c.Settled() {
			d.Status, d.Reason = GateBlocked, progress+fmt.Sprintf(", below the gate's %s, and no device is left to try", cond)
			return d
		}
		d.Status, d.Reason = GateRunning, progress+", waiting for "+cond
		return d
	}
	from := st.ReachedAt
	if from.IsZero() {
		from = now
	}
	if until := from.Add(soak); now.Before(until) {
		d.Status, d.Until = GateSoaking, until
		d.Reason = progress + fmt.Sprintf("; soaking until %s", until.UTC().Format(time.RFC3339))
		return d
	}
	if g.Manual && !st.Approved {
		d.Status, d.Reason = GateAwaitingApproval, progress+fmt.Sprintf("; waiting for approval to start wave %d", wave+2)
		return d
	}
	d.Status = GateOpen
	if last {
		d.Reason = progress + "; the campaign is complete"
	} else {
		d.Reason = progress + fmt.Sprintf("; wave %d may start", wave+2)
	}
	return d
}
