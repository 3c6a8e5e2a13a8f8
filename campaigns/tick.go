package campaigns

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

// timeoutPrefix starts the reason of a job the campaign cancelled for running too long, so
// that the cancellation counts as a (retryable) failure, not as an operator's cancel.
const timeoutPrefix = "campaign timeout: "

// syncJobs applies the jobs of c changed since the last sync to their members. A job the
// campaign started but never recorded (lwota stopped between the two writes) is adopted here,
// so that a restart never starts a second update for the same device.
func (m *Manager) syncJobs(ctx context.Context, c *Campaign, rt *runtime, now time.Time, changed map[int]bool) error {
	var since time.Time
	if !rt.synced.IsZero() {
		since = rt.synced.Add(-syncOverlap)
	}
	jobs, err := m.updates.CampaignJobs(ctx, c.ID, since)
	if err != nil {
		return fmt.Errorf("campaign jobs: %w", err)
	}
	for _, j := range jobs {
		if j.UpdatedAt.After(rt.synced) {
			rt.synced = j.UpdatedAt
		}
		if i, ok := rt.index[j.Endpoint]; ok && m.applyJob(c, &rt.members[i], j, now) {
			changed[i] = true
		}
	}
	return nil
}

// applyJob moves a member to what its job says; it reports whether the member changed.
func (m *Manager) applyJob(c *Campaign, mem *Member, j *fwupdate.Job, now time.Time) bool {
	if mem.JobID != j.ID {
		// Only a job newer than the member's last reset can be its current attempt.
		if mem.State != MemberPending || j.CreatedAt.Before(mem.PendingSince) {
			return false
		}
		mem.JobID, mem.StartedAt = j.ID, j.CreatedAt
		mem.Attempts++
	}
	before := *mem
	mem.JobState = j.State
	switch {
	case j.Active():
		mem.State, mem.Reason = MemberInProgress, j.Reason
	case j.State == fwupdate.StateSucceeded:
		mem.State, mem.Reason, mem.EndedAt = MemberSucceeded, j.Reason, j.UpdatedAt
	case j.State == fwupdate.StateCancelled && !strings.HasPrefix(j.Reason, timeoutPrefix):
		mem.State, mem.Reason, mem.EndedAt = MemberCancelled, j.Reason, j.UpdatedAt
	default: // failed, or cancelled for a timeout
		mem.State, mem.Reason, mem.EndedAt = MemberFailed, j.Reason, j.UpdatedAt
		if before.State != MemberFailed && mem.Attempts < 1+extraAttempts(c.Plan.Retries, j) && c.State.Active() {
			mem.State, mem.PendingSince, mem.EndedAt = MemberPending, now, time.Time{}
			mem.Reason = fmt.Sprintf("attempt %d failed (%s); retrying", mem.Attempts, j.Reason)
		}
	}
	if *mem == before {
		return false
	}
	mem.UpdatedAt = now
	return true
}

// extraAttempts is how many more attempts the plan allows after j's failure, by its class: a
// timeout or a result a new attempt may cure is retryable, anything else terminal.
func extraAttempts(r plan.Retries, j *fwupdate.Job) int {
	if j.State == fwupdate.StateCancelled {
		return r.Retryable // our own timeout
	}
	if j.DeviceResult < 0 {
		return r.Retryable // no result: the device went quiet, a step timed out
	}
	switch _, class := fwupdate.Reason(j.DeviceResult); class {
	case fwupdate.ResultRetryable, fwupdate.ResultInitial:
		return r.Retryable
	}
	return r.Terminal
}

// retryFailed handles an operator's retry: every failed member whose device the campaign can
// (still, or again) claim becomes pending with a fresh attempt budget.
func (m *Manager) retryFailed(ctx context.Context, c *Campaign, rt *runtime, now time.Time, changed map[int]bool) error {
	var eps []string
	for _, mem := range rt.members {
		if mem.State == MemberFailed {
			eps = append(eps, mem.Endpoint)
		}
	}
	claimed, err := m.store.Claim(ctx, c.ID, eps)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	for _, ep := range claimed {
		i := rt.index[ep]
		mem := &rt.members[i]
		if mem.State != MemberFailed {
			continue
		}
		mem.State, mem.PendingSince, mem.EndedAt, mem.Attempts = MemberPending, now, time.Time{}, 0
		mem.Reason, mem.UpdatedAt = "retry: "+mem.Reason, now
		changed[i] = true
	}
	c.RetriesDone = c.RetryRound
	return nil
}

// cancelInFlight cancels the updates in flight (hard abort, or the schedule's end).
func (m *Manager) cancelInFlight(ctx context.Context, c *Campaign, rt *runtime, reason string, changed map[int]bool) {
	left := 0
	for i := range rt.members {
		mem := &rt.members[i]
		if mem.State != MemberInProgress {
			continue
		}
		j, err := m.updates.Cancel(ctx, mem.JobID, reason)
		if err != nil && !errors.Is(err, fwupdate.ErrInvalidTransition) {
			left++
			m.log.Warn("campaign cancel update", "campaign", c.ID, "job", mem.JobID, "err", err)
			continue
		}
		if j != nil && m.applyJob(c, mem, j, m.now()) {
			changed[i] = true
		}
	}
	if left == 0 {
		c.CancelInFlight = false
	}
}

// timeouts cancels updates in progress longer than the plan's in-progress timeout; the next
// sync counts them as failed (and retries them if the plan allows).
func (m *Manager) timeouts(ctx context.Context, c *Campaign, rt *runtime, now time.Time, changed map[int]bool) {
	limit := c.Plan.Retries.InProgressTimeout
	if limit <= 0 {
		return
	}
	for i := range rt.members {
		mem := &rt.members[i]
		if mem.State != MemberInProgress || now.Sub(mem.StartedAt) < limit {
			continue
		}
		j, err := m.updates.Cancel(ctx, mem.JobID, fmt.Sprintf("%sin progress for more than %s", timeoutPrefix, limit))
		if err != nil && !errors.Is(err, fwupdate.ErrInvalidTransition) {
			m.log.Warn("campaign timeout cancel", "campaign", c.ID, "job", mem.JobID, "err", err)
			continue
		}
		if j != nil && m.applyJob(c, mem, j, now) {
			changed[i] = true
		}
	}
}

// decide takes the campaign's own decisions for this tick: a scheduled start, the schedule's
// end, thresholds, and the gate of the current wave. It returns the events to store.
func decide(c *Campaign, counts []plan.Counts, now time.Time) []Event {
	var events []Event
	emit := func(from State, action, reason string) {
		events = append(events, Event{CampaignID: c.ID, At: now, From: from, To: c.State, Actor: actorSelf, Action: action, Reason: reason})
	}
	from := c.State
	if c.State == StateScheduled {
		if c.Plan.Schedule.StartAt.After(now) {
			return nil
		}
		begin(c, now)
		emit(from, "start", "scheduled start")
		from = c.State
	}
	if c.State != StateRunning && c.State != StateWaitingApproval {
		return events
	}
	var all plan.Counts
	for _, w := range counts {
		all.Pending, all.InProgress = all.Pending+w.Pending, all.InProgress+w.InProgress
	}
	if end := c.Plan.Schedule.EndAt; !end.IsZero() && !now.Before(end) {
		if c.Plan.Schedule.EndAction == plan.EndCancelInFlight && all.InProgress > 0 && !c.CancelInFlight {
			c.CancelInFlight = true
		}
		if all.InProgress == 0 {
			c.State, c.EndedAt = StateCompleted, now
			c.Reason = fmt.Sprintf("the schedule ended at %s; %d devices were not started", end.UTC().Format(time.RFC3339), all.Pending)
			emit(from, "end", c.Reason)
		}
		return events
	}
	if v := plan.CheckThresholds(c.Plan, counts[:c.Wave+1]); v.Action != plan.ActionContinue {
		if v.Action == plan.ActionAbort {
			c.State, c.EndedAt = StateAborted, now
		} else {
			c.State = StatePaused
		}
		c.Reason = v.Reason
		emit(from, "threshold", v.Reason)
		return events
	}
	for {
		d := plan.Advance(c.Plan, c.Wave, counts[c.Wave], c.Gates[c.Wave], now)
		if d.Reached && c.Gates[c.Wave].ReachedAt.IsZero() {
			c.Gates[c.Wave].ReachedAt = now
		}
		switch d.Status {
		case plan.GateOpen:
			if c.Wave == len(c.Plan.Waves)-1 {
				if c.Plan.DynamicMembership || !all.Settled() {
					// New devices may still join (the campaign runs until its schedule ends), or
					// a retried device of an earlier wave has yet to finish.
					return events
				}
				c.State, c.Reason, c.EndedAt = StateCompleted, d.Reason, now
				emit(from, "complete", d.Reason)
				return events
			}
			c.Wave++
			c.WaveStarted = append(c.WaveStarted, now)
			c.State, c.Reason = StateRunning, ""
			emit(from, "wave", d.Reason)
			from = c.State
			continue // an empty wave opens its gate at once
		case plan.GateAwaitingApproval:
			if c.State != StateWaitingApproval {
				c.State, c.Reason = StateWaitingApproval, d.Reason
				emit(from, "gate", d.Reason)
			}
		case plan.GateBlocked:
			c.State, c.Reason, c.EndedAt = StateFailed, d.Reason, now
			emit(from, "gate", d.Reason)
		}
		return events
	}
}

// mayStart reports whether new updates may start now: inside a maintenance window (when the
// plan has any) and before the schedule's end.
func (m *Manager) mayStart(c *Campaign, rt *runtime, now time.Time) bool {
	if end := c.Plan.Schedule.EndAt; !end.IsZero() && !now.Before(end) {
		return false
	}
	return len(c.Plan.Schedule.Windows) == 0 || rt.windows.Open(now)
}

// startUpdates starts the updates the pacer allows, wave by wave in rank order. A device
// already on the image's version is counted as up to date without an update. It reports
// whether the campaign's image is gone (deleted under it), which no later tick can mend.
func (m *Manager) startUpdates(ctx context.Context, c *Campaign, rt *runtime, counts []plan.Counts, now time.Time, changed map[int]bool) (int, bool) {
	load := plan.Load{InFlightByLabel: map[string]int{}}
	for _, w := range counts {
		load.InFlight += w.InProgress
		load.Successes += w.Succeeded
	}
	capKey := c.Plan.Pacing.PerLabelCap.Key
	for _, mem := range rt.members {
		if mem.State == MemberInProgress && capKey != "" && mem.CapLabel != "" {
			load.InFlightByLabel[mem.CapLabel]++
		}
	}
	budget := rt.pacer.Budget(load)
	var picks []int
	for i, mem := range rt.members {
		if budget.N <= 0 || len(picks) >= m.cfg.MaxStartsPerTick {
			break
		}
		if mem.State != MemberPending || mem.Wave > c.Wave {
			continue
		}
		var labels map[string]string
		if capKey != "" && mem.CapLabel != "" {
			labels = map[string]string{capKey: mem.CapLabel}
		}
		if budget.Take(labels) {
			picks = append(picks, i)
		}
	}
	if len(picks) == 0 {
		return 0, false
	}
	req := fwupdate.StartRequest{ImageID: c.ImageID, Method: c.Method, Policy: c.Policy, CampaignID: c.ID}
	var (
		mu      sync.Mutex
		started int
		gone    bool
		wg      sync.WaitGroup
		work    = make(chan int)
	)
	for range min(m.cfg.StartConcurrency, len(picks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				mem := &rt.members[i] // each index is handled by one goroutine
				ok, imageGone := m.startOne(ctx, c, mem, req, now)
				mu.Lock()
				changed[i] = true
				if ok {
					started++
				}
				gone = gone || imageGone
				mu.Unlock()
			}
		}()
	}
	for _, i := range picks {
		work <- i
	}
	close(work)
	wg.Wait()
	rt.pacer.Started(started)
	return started, gone
}

// startOne starts one member's update; it reports whether a job was created, and whether
// the campaign's image is gone.
func (m *Manager) startOne(ctx context.Context, c *Campaign, mem *Member, req fwupdate.StartRequest, now time.Time) (bool, bool) {
	mem.UpdatedAt = now
	reg, err := m.fleet.Device(ctx, mem.Endpoint)
	switch {
	case errors.Is(err, registration.ErrNotFound):
		mem.State, mem.Reason, mem.EndedAt = MemberFailed, "the device is not known to lwota", now
		return false, false
	case err != nil:
		mem.Reason = "waiting: " + err.Error()
		return false, false
	case reg.FirmwareVersion != "" && reg.FirmwareVersion == c.ImageVersion:
		mem.State, mem.Reason, mem.EndedAt = MemberUpToDate, "already on "+c.ImageVersion, now
		return false, false
	}
	j, err := m.updates.Start(ctx, mem.Endpoint, req)
	switch {
	case errors.Is(err, fwupdate.ErrActiveJob):
		// A single-device update is running: the campaign waits its turn rather than collide.
		mem.Reason = "waiting: the device has another update in progress"
		return false, false
	case errors.Is(err, fwupdate.ErrImageNotFound):
		// Deleted under the campaign: no retry can bring it back, the campaign fails (step).
		mem.Reason = imageGoneReason(c.ImageID)
		return false, true
	case errors.Is(err, fwupdate.ErrDeviceNotFound):
		mem.State, mem.Reason, mem.EndedAt = MemberFailed, "the device is not known to lwota", now
		return false, false
	case err != nil:
		mem.Reason = "waiting: " + err.Error()
		m.log.Warn("campaign start update", "campaign", c.ID, "endpoint", mem.Endpoint, "err", err)
		return false, false
	}
	mem.State, mem.JobID, mem.JobState, mem.Reason = MemberInProgress, j.ID, j.State, ""
	mem.StartedAt = j.CreatedAt
	mem.Attempts++
	return true, false
}

// imageGoneReason is the reason of a campaign, or a member, whose image was deleted.
func imageGoneReason(id string) string { return fmt.Sprintf("image %s was deleted", id) }

// join adds the devices that match the selector now and are not members yet (dynamic
// membership) to the current wave.
func (m *Manager) join(ctx context.Context, c *Campaign, rt *runtime, now time.Time) error {
	rt.scanned = now
	if rt.sel == nil {
		return nil
	}
	devices, err := m.fleet.ListDevices(ctx, narrowed(rt.sel, now))
	if err != nil {
		return err
	}
	capKey := c.Plan.Pacing.PerLabelCap.Key
	rank := len(rt.members)
	var fresh []Member
	for _, d := range devices {
		if _, ok := rt.index[d.Endpoint]; ok || !rt.sel.Match(deviceOf(d, now)) {
			continue
		}
		mem := Member{CampaignID: c.ID, Endpoint: d.Endpoint, Wave: c.Wave, Rank: rank, State: MemberPending, PendingSince: now, UpdatedAt: now}
		if capKey != "" {
			mem.CapLabel = d.Labels[capKey]
		}
		rank++
		fresh = append(fresh, mem)
	}
	if len(fresh) == 0 {
		return nil
	}
	added, err := m.store.AddMembers(ctx, c, fresh)
	if err != nil {
		return err
	}
	for _, mem := range added {
		rt.index[mem.Endpoint] = len(rt.members)
		rt.members = append(rt.members, mem)
	}
	if len(added) > 0 {
		m.log.Info("campaign devices joined", "campaign", c.ID, "devices", len(added))
	}
	return nil
}

func equalCampaign(a, b *Campaign) bool { return reflect.DeepEqual(a, b) }

// auditEvents records the campaign's own decisions; operators' actions are audited by the API.
func (m *Manager) auditEvents(ctx context.Context, events []Event) {
	if m.audit == nil {
		return
	}
	for _, e := range events {
		err := m.audit.Record(ctx, audit.Entry{
			At: e.At, Actor: audit.ActorSystem, Action: "campaign." + e.Action, Target: "campaign:" + e.CampaignID,
			Outcome: audit.OutcomeSuccess, Detail: map[string]string{"from": string(e.From), "to": string(e.To), "reason": e.Reason},
		})
		if err != nil {
			m.log.Warn("audit campaign event", "campaign", e.CampaignID, "err", err)
		}
	}
}
