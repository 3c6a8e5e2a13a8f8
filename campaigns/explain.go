package campaigns

import (
	"fmt"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
)

// ResumeEffect says in words what Resume would do to c now, or "" when c is not paused. It is
// not a second copy of the rules: it resumes a copy of c as Resume does and runs on it the
// decision the next tick would take (decide), then describes the outcome. A campaign a
// threshold paused, resumed with the same thresholds, pauses again at once: the words say so
// and what to change.
func ResumeEffect(c *Campaign, members []Member, now time.Time) string {
	return ResumeEffectFrom(c, Summarise(members, len(c.Plan.Waves)), now)
}

// ResumeEffectFrom is ResumeEffect from the summary of c's members.
func ResumeEffectFrom(c *Campaign, s MemberSummary, now time.Time) string {
	if c.State != StatePaused {
		return ""
	}
	r := c.Clone()
	counts := make([]plan.Counts, len(r.Plan.Waves))
	copy(counts, s.Waves)
	if len(counts) == 0 {
		return "Resume will run the campaign; it has no wave"
	}
	if r.StartedAt.IsZero() {
		if at := r.Plan.Schedule.StartAt; at.After(now) {
			return "Resume will schedule the campaign: it starts at " + at.UTC().Format(time.RFC3339)
		}
		begin(r, now)
	} else {
		r.State, r.Reason = StateRunning, ""
	}
	wasWave := r.Wave
	decide(r, counts, now)
	switch r.State {
	case StatePaused:
		return fmt.Sprintf("Resume will pause the campaign again at once: %s. Raise the failure threshold as you resume "+
			"(failure_threshold, overall_threshold) or retry the failed devices to go on", r.Reason)
	case StateAborted:
		return "Resume will abort the campaign at once: " + r.Reason
	case StateFailed:
		return "Resume will end the campaign as failed: " + r.Reason
	case StateCompleted:
		return "Resume will complete the campaign: " + r.Reason
	case StateWaitingApproval:
		return fmt.Sprintf("Resume will wait for an operator to approve wave %d: %s", r.Wave+2, r.Reason)
	case StateScheduled:
		return "Resume will schedule the campaign: " + r.Reason
	}
	if r.Wave > wasWave {
		return fmt.Sprintf("Resume will start wave %d (%d devices)", r.Wave+1, counts[r.Wave].Total())
	}
	var pending, inProgress int
	for _, w := range counts[:r.Wave+1] {
		pending, inProgress = pending+w.Pending, inProgress+w.InProgress
	}
	windows := ""
	if len(r.Plan.Schedule.Windows) > 0 {
		windows = ", inside its maintenance windows"
	}
	if c.StartedAt.IsZero() {
		return fmt.Sprintf("Resume will start the campaign: wave 1 (%d devices)%s", counts[0].Total(), windows)
	}
	if pending > 0 {
		return fmt.Sprintf("Resume will start updating the %d pending devices of wave %d%s", pending, r.Wave+1, windows)
	}
	d := plan.Advance(r.Plan, r.Wave, counts[r.Wave], r.Gates[r.Wave], now)
	if inProgress > 0 {
		return fmt.Sprintf("Resume will let the %d devices in progress finish; %s", inProgress, d.Reason)
	}
	return "Resume will go on: " + d.Reason
}
