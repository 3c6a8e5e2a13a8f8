package campaigns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
)

// Actions an operator takes. Each one is stored, with who took it and why, before it answers.

// Start moves a draft to running, or to scheduled when its start time lies ahead. It does not
// wait for a tick in progress: a tick never steps a draft (it is not followed), and the
// version's compare-and-set orders the start with any other action on it. A tick that starts
// thousands of updates of another campaign takes seconds, and a start waited for it.
func (m *Manager) Start(ctx context.Context, id, actor string) (*Campaign, error) {
	return m.actUnserialised(ctx, id, actor, "start", "", func(c *Campaign) error {
		if c.State != StateDraft {
			return fmt.Errorf("%w: start a %s campaign", ErrInvalidTransition, c.State)
		}
		startDraft(c, m.now())
		return nil
	})
}

// startDraft starts the draft c at now: scheduled when its schedule starts later, else running.
func startDraft(c *Campaign, now time.Time) {
	if at := c.Plan.Schedule.StartAt; at.After(now) {
		c.State, c.Reason = StateScheduled, "starts at "+at.UTC().Format("2006-01-02T15:04:05Z")
		return
	}
	begin(c, now)
}

// begin puts c into its first wave at now.
func begin(c *Campaign, now time.Time) {
	c.State, c.Reason, c.StartedAt, c.Wave = StateRunning, "", now, 0
	c.WaveStarted = append(c.WaveStarted[:0], now)
}

// Pause stops new updates from starting; updates in flight finish.
func (m *Manager) Pause(ctx context.Context, id, actor, reason string) (*Campaign, error) {
	if reason == "" {
		reason = "paused by " + actor
	}
	return m.act(ctx, id, actor, "pause", reason, func(c *Campaign) error {
		switch c.State {
		case StateRunning, StateScheduled, StateWaitingApproval:
			c.State, c.Reason = StatePaused, reason
			return nil
		}
		return fmt.Errorf("%w: pause a %s campaign", ErrInvalidTransition, c.State)
	})
}

// ResumeOptions change a paused campaign's thresholds as it resumes (nil: unchanged).
type ResumeOptions struct {
	WaveThreshold    *plan.FailureThreshold
	OverallThreshold *plan.FailureThreshold
}

// Resume lets a paused campaign go on, with raised thresholds if given.
func (m *Manager) Resume(ctx context.Context, id, actor string, opts ResumeOptions) (*Campaign, error) {
	// The history says what changed, so that a later reader sees why the campaign went on.
	var changes []string
	if t := opts.WaveThreshold; t != nil {
		changes = append(changes, "failure threshold per wave now "+describeThreshold(*t))
	}
	if t := opts.OverallThreshold; t != nil {
		changes = append(changes, "overall failure threshold now "+describeThreshold(*t))
	}
	return m.act(ctx, id, actor, "resume", strings.Join(changes, "; "), func(c *Campaign) error {
		if c.State != StatePaused {
			return fmt.Errorf("%w: resume a %s campaign", ErrInvalidTransition, c.State)
		}
		p := c.Plan
		if opts.WaveThreshold != nil {
			p.WaveThreshold = *opts.WaveThreshold
		}
		if opts.OverallThreshold != nil {
			p.OverallThreshold = *opts.OverallThreshold
		}
		if err := validateThresholds(p); err != nil {
			return err
		}
		c.Plan = p
		if c.StartedAt.IsZero() {
			now := m.now()
			if c.Plan.Schedule.StartAt.After(now) {
				c.State, c.Reason = StateScheduled, ""
				return nil
			}
			begin(c, now)
			return nil
		}
		c.State, c.Reason = StateRunning, ""
		return nil
	})
}

// describeThreshold is a threshold in words: "20% of at least 5 finished devices: pause".
func describeThreshold(t plan.FailureThreshold) string {
	var parts []string
	if t.Percent > 0 {
		parts = append(parts, fmt.Sprintf("%v%% of at least %d finished devices", t.Percent, t.MinDevices))
	}
	if t.Count > 0 {
		parts = append(parts, fmt.Sprintf("%d failed devices", t.Count))
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, " or ") + ": " + string(t.Action)
}

// validateThresholds checks the thresholds of p as plan.Validate does, without the checks of
// a schedule that has already begun (its start time has passed by now).
func validateThresholds(p plan.Plan) error {
	probe := plan.Plan{Waves: []plan.Wave{{Percent: 100}}, WaveThreshold: p.WaveThreshold, OverallThreshold: p.OverallThreshold}
	if err := plan.Validate(probe, probe.Schedule.StartAt); err != nil {
		var ve *plan.ValidationError
		if errors.As(err, &ve) {
			out := &InvalidError{}
			for _, pr := range ve.Problems {
				out.Problems = append(out.Problems, Problem{Field: pr.Field, Message: pr.Msg})
			}
			return out
		}
		return err
	}
	return nil
}

// Abort ends a campaign: no update starts any more; with hard, the updates in flight are
// cancelled too, else they finish and are counted.
func (m *Manager) Abort(ctx context.Context, id, actor, reason string, hard bool) (*Campaign, error) {
	if reason == "" {
		reason = "aborted by " + actor
	}
	action := "abort"
	if hard {
		action = "abort-hard"
	}
	return m.act(ctx, id, actor, action, reason, func(c *Campaign) error {
		if c.State.Ended() {
			return fmt.Errorf("%w: abort a %s campaign", ErrInvalidTransition, c.State)
		}
		c.State, c.Reason, c.EndedAt = StateAborted, reason, m.now()
		c.CancelInFlight = hard
		return nil
	})
}

// Approve opens the manual gate of the current wave: the next wave starts once the gate's
// condition holds (at once when the campaign is waiting for approval).
func (m *Manager) Approve(ctx context.Context, id, actor string) (*Campaign, error) {
	return m.act(ctx, id, actor, "approve", "", func(c *Campaign) error {
		switch c.State {
		case StateWaitingApproval, StateRunning, StatePaused:
		default:
			return fmt.Errorf("%w: approve a %s campaign", ErrInvalidTransition, c.State)
		}
		if c.Wave >= len(c.Gates) {
			return fmt.Errorf("%w: no gate to approve", ErrInvalidTransition)
		}
		c.Gates[c.Wave].Approved = true
		if c.State == StateWaitingApproval {
			c.State, c.Reason = StateRunning, ""
		}
		return nil
	})
}

// Retry gives every failed device of the campaign a new attempt. A campaign that had ended runs
// again for them; a device that meanwhile joined another active campaign is left out.
func (m *Manager) Retry(ctx context.Context, id, actor string) (*Campaign, error) {
	return m.act(ctx, id, actor, "retry", "", func(c *Campaign) error {
		if c.State == StateDraft || c.State == StateScheduled {
			return fmt.Errorf("%w: retry a %s campaign", ErrInvalidTransition, c.State)
		}
		c.RetryRound++
		if c.State.Ended() {
			c.State, c.Reason, c.EndedAt, c.CancelInFlight = StateRunning, "retrying failed devices", timeZero, false
		}
		return nil
	})
}

// act applies change to the stored campaign and stores it with an event, retrying when a tick
// or another node saved the campaign meanwhile.
func (m *Manager) act(ctx context.Context, id, actor, action, reason string, change func(c *Campaign) error) (*Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.actUnserialised(ctx, id, actor, action, reason, change)
}

// actUnserialised is act without waiting for a tick in progress: for an action on a campaign
// no tick steps, whose change itself refuses every other.
func (m *Manager) actUnserialised(ctx context.Context, id, actor, action, reason string, change func(c *Campaign) error) (*Campaign, error) {
	for range 5 {
		c, err := m.store.GetCampaign(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%s campaign %s: %w", action, id, err)
		}
		from := c.State
		if err := change(c); err != nil {
			return nil, fmt.Errorf("%s campaign %s: %w", action, id, err)
		}
		c.Version++
		c.UpdatedAt = m.now()
		ev := Event{CampaignID: id, At: c.UpdatedAt, From: from, To: c.State, Actor: actor, Action: action, Reason: reason}
		err = m.store.SaveCampaign(ctx, c, ev)
		if errors.Is(err, ErrStale) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s campaign %s: %w", action, id, err)
		}
		m.log.Info("campaign "+action, "campaign", id, "from", from, "to", c.State, "by", actor, "reason", reason)
		m.publish(ev)
		m.Wake()
		return c, nil
	}
	return nil, fmt.Errorf("%s campaign %s: %w", action, id, ErrStale)
}

// Wake asks for a tick soon, so that an action (or a campaign CreateCounted started) takes
// effect without waiting a whole Tick.
func (m *Manager) Wake() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}
