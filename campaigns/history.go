package campaigns

import (
	"slices"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
)

// Sample is the members' counts per state at one moment.
type Sample struct {
	At     time.Time
	Counts plan.Counts
}

// History is a campaign's members per state over time, Step apart.
type History struct {
	From, To time.Time
	Step     time.Duration
	Samples  []Sample
}

// MaxHistorySamples bounds HistoryOf's answer whatever the campaign's age.
const MaxHistorySamples = 500

// HistoryOf rebuilds c's members per state over time from what each member keeps: pending
// from the campaign's start (or, joining later by dynamic membership, from when it became
// pending), in progress from StartedAt, in its final state from EndedAt. It spans the
// campaign's start (its creation while a draft) to its end (now while it is followed) in at
// most maxSamples samples (MaxHistorySamples when maxSamples < 2), a whole number of seconds
// apart; the last sample is at the end. A member keeps only its current attempt, so a device a
// retry gave a new attempt shows that attempt only. It is pure: callers read the members and
// the clock.
func HistoryOf(c *Campaign, members []Member, now time.Time, maxSamples int) History {
	if maxSamples < 2 {
		maxSamples = MaxHistorySamples
	}
	from := c.StartedAt
	if from.IsZero() {
		from = c.CreatedAt
	}
	to := now
	type change struct {
		at       time.Time
		from, to MemberState
	}
	var changes []change
	last := from
	note := func(at time.Time) {
		if at.After(last) {
			last = at
		}
	}
	initial := plan.Counts{}
	for _, m := range members {
		if !c.Plan.DynamicMembership || !m.PendingSince.After(from) {
			add(&initial, MemberPending, 1)
		} else { // it joined later
			changes = append(changes, change{m.PendingSince, "", MemberPending})
			note(m.PendingSince)
		}
		cur := MemberPending
		if m.State == MemberPending {
			continue
		}
		if !m.StartedAt.IsZero() {
			changes = append(changes, change{m.StartedAt, cur, MemberInProgress})
			cur = MemberInProgress
			note(m.StartedAt)
		}
		if m.State == MemberInProgress {
			if cur != MemberInProgress { // started before StartedAt was kept: from its last change
				changes = append(changes, change{m.UpdatedAt, cur, MemberInProgress})
				note(m.UpdatedAt)
			}
			continue
		}
		end := m.EndedAt
		if end.IsZero() {
			end = m.UpdatedAt
		}
		changes = append(changes, change{end, cur, m.State})
		note(end)
	}
	if !c.Followed() && !c.EndedAt.IsZero() {
		to = c.EndedAt
		if last.After(to) {
			to = last
		}
	}
	if to.Before(from) {
		to = from
	}
	slices.SortStableFunc(changes, func(a, b change) int { return a.at.Compare(b.at) })

	span := to.Sub(from)
	// Samples at from, from+step, ... before to, and at to: at most maxSamples.
	step := time.Second
	if need := (span + time.Duration(maxSamples-2)) / time.Duration(maxSamples-1); need > step {
		step = (need + time.Second - 1).Truncate(time.Second)
	}
	h := History{From: from, To: to, Step: step}
	counts, i := initial, 0
	at := func(t time.Time) {
		for ; i < len(changes) && !changes[i].at.After(t); i++ {
			add(&counts, changes[i].from, -1)
			add(&counts, changes[i].to, 1)
		}
		h.Samples = append(h.Samples, Sample{At: t, Counts: counts})
	}
	for t := from; t.Before(to); t = t.Add(step) {
		at(t)
	}
	at(to)
	return h
}

// add adds n to the count of state s ("" counts nowhere: not a member yet).
func add(c *plan.Counts, s MemberState, n int) {
	switch s {
	case MemberPending:
		c.Pending += n
	case MemberInProgress:
		c.InProgress += n
	case MemberSucceeded:
		c.Succeeded += n
	case MemberUpToDate:
		c.UpToDate += n
	case MemberFailed:
		c.Failed += n
	case MemberCancelled:
		c.Cancelled += n
	}
}
