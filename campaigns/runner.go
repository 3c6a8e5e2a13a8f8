package campaigns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/campaigns/selector"
)

// actorSelf is the actor of the decisions a campaign takes by itself (a threshold, a gate).
const actorSelf = "lwota"

// leaseName is the lease the node driving campaigns holds.
const leaseName = "campaigns"

// syncOverlap re-reads jobs changed shortly before the last sync, so that a change stored
// with a timestamp just before another node's clock is not missed; applying a job twice is
// harmless.
const syncOverlap = 5 * time.Second

// Run drives the active campaigns until ctx ends, on this node while it holds the lease: a
// gocron job ticks every Config.Tick (and at once after an action), and only the elected node
// runs it. Campaign state lives in the store, so a restart resumes every campaign where it was.
func (m *Manager) Run(ctx context.Context) error {
	s, err := gocron.NewScheduler(gocron.WithDistributedElector(&leaseElector{m: m}), gocron.WithLocation(time.UTC))
	if err != nil {
		return fmt.Errorf("campaigns: scheduler: %w", err)
	}
	job, err := s.NewJob(gocron.DurationJob(m.cfg.Tick), gocron.NewTask(m.Tick),
		gocron.WithSingletonMode(gocron.LimitModeReschedule), gocron.WithName("campaign-tick"),
		gocron.WithStartAt(gocron.WithStartImmediately()))
	if err != nil {
		return fmt.Errorf("campaigns: scheduler job: %w", err)
	}
	s.Start()
	for {
		select {
		case <-ctx.Done():
			if err := s.Shutdown(); err != nil {
				m.log.Warn("campaign scheduler shutdown", "err", err)
			}
			return nil
		case <-m.poke:
			if err := job.RunNow(); err != nil {
				m.log.Debug("campaign tick now", "err", err)
			}
		}
	}
}

// leaseElector makes the node holding the store's lease the leader (gocron.Elector).
type leaseElector struct{ m *Manager }

var errNotLeader = errors.New("campaigns: another node drives the campaigns")

func (e *leaseElector) IsLeader(ctx context.Context) error {
	ok, err := e.m.store.Lease(ctx, leaseName, e.m.cfg.Node, e.m.now(), e.m.cfg.LeaseTTL)
	if err != nil {
		return fmt.Errorf("campaigns: lease: %w", err)
	}
	if !ok {
		e.m.mu.Lock()
		clear(e.m.runs) // a follower keeps no view: it reloads when it leads again
		e.m.mu.Unlock()
		return errNotLeader
	}
	return nil
}

// Tick looks at every campaign that is active (or ended with updates still in flight) once:
// it follows their jobs, takes the decisions of thresholds, gates and schedule, and starts
// the updates pacing allows. Run calls it on the leader; tests call it directly.
func (m *Manager) Tick(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := time.Now()
	defer func() { m.m.tick.Observe(time.Since(start).Seconds()) }()
	all, err := m.store.FollowedCampaigns(ctx)
	if err != nil {
		m.log.Warn("campaign tick", "err", err)
		return
	}
	seen := make(map[string]bool, len(all))
	for _, c := range all {
		seen[c.ID] = true
		if err := m.step(ctx, c); err != nil && ctx.Err() == nil {
			m.log.Warn("campaign step", "campaign", c.ID, "err", err)
			delete(m.runs, c.ID) // reload from the store next time
		}
	}
	for id := range m.runs {
		if !seen[id] {
			delete(m.runs, id)
			m.m.forget(id)
		}
	}
}

// runtime is the leader's in-memory view of one campaign: its members, its pacer and the
// jobs seen so far. It is rebuilt from the store whenever the campaign changed elsewhere.
type runtime struct {
	version int
	members []Member
	index   map[string]int // endpoint -> members index
	pacer   *plan.Pacer
	windows *plan.Windows
	synced  time.Time // jobs changed before this were applied
	scanned time.Time // last dynamic-membership scan
	sel     *selector.Selector
}

func (m *Manager) runtimeFor(ctx context.Context, c *Campaign) (*runtime, error) {
	if rt := m.runs[c.ID]; rt != nil && rt.version == c.Version {
		return rt, nil
	}
	members, err := m.store.Members(ctx, c.ID, MemberFilter{})
	if err != nil {
		return nil, err
	}
	rt := &runtime{version: c.Version, members: members, index: make(map[string]int, len(members))}
	now := m.now()
	var recent []time.Time
	for i, mem := range members {
		rt.index[mem.Endpoint] = i
		if !mem.StartedAt.IsZero() && now.Sub(mem.StartedAt) < time.Minute {
			recent = append(recent, mem.StartedAt)
		}
	}
	slices.SortFunc(recent, func(a, b time.Time) int { return a.Compare(b) })
	rt.pacer = plan.NewPacer(c.Plan.Pacing, m.now, recent)
	if rt.windows, err = plan.NewWindows(c.Plan.Schedule.Windows); err != nil {
		return nil, fmt.Errorf("windows: %w", err)
	}
	if c.Query != "" {
		if rt.sel, err = selector.Parse(c.Query); err != nil {
			return nil, fmt.Errorf("selector: %w", err)
		}
	} else if len(c.Endpoints) > 0 {
		if rt.sel, err = selector.Endpoints(c.Endpoints); err != nil {
			return nil, fmt.Errorf("selector: %w", err)
		}
	}
	m.runs[c.ID] = rt
	return rt, nil
}

// step is one tick of one campaign. The campaign is saved (compare-and-set on its version)
// together with its changed members: a tick working from a stale copy fails there and changes
// nothing, and member states are derived again from the jobs on the next tick anyway.
func (m *Manager) step(ctx context.Context, c *Campaign) error {
	rt, err := m.runtimeFor(ctx, c)
	if err != nil {
		return err
	}
	now := m.now()
	orig := c.Clone()
	var events []Event
	changed := make(map[int]bool)

	if err := m.syncJobs(ctx, c, rt, now, changed); err != nil {
		return err
	}
	if c.RetryRound > c.RetriesDone {
		if err := m.retryFailed(ctx, c, rt, now, changed); err != nil {
			return err
		}
	}
	if c.CancelInFlight {
		m.cancelInFlight(ctx, c, rt, "campaign "+string(c.State)+": "+c.Reason, changed)
	}
	m.timeouts(ctx, c, rt, now, changed)

	counts := Counts(rt.members, len(c.Plan.Waves))
	if c.State.Active() {
		events = decide(c, counts, now)
	}
	var starts int
	// A decision (a start, a new wave) is stored before anything acts on it: its updates start
	// on the next tick.
	if c.State == StateRunning && len(events) == 0 && m.mayStart(c, rt, now) {
		if c.Plan.DynamicMembership && now.Sub(rt.scanned) >= m.cfg.MembershipEvery {
			if err := m.join(ctx, c, rt, now); err != nil {
				m.log.Warn("campaign membership", "campaign", c.ID, "err", err)
			}
		}
		var gone bool
		starts, gone = m.startUpdates(ctx, c, rt, counts, now, changed)
		if gone {
			from := c.State
			c.State, c.Reason, c.EndedAt = StateFailed, imageGoneReason(c.ImageID), now
			events = append(events, Event{CampaignID: c.ID, At: now, From: from, To: c.State, Actor: actorSelf, Action: "fail", Reason: c.Reason})
			m.log.Warn("campaign failed: its image was deleted", "campaign", c.ID, "image", c.ImageID)
		}
	}
	inFlight := 0
	for _, mem := range rt.members {
		if mem.State == MemberInProgress {
			inFlight++
		}
	}
	c.InFlight = inFlight
	batch := make([]Member, 0, len(changed))
	for i := range changed {
		batch = append(batch, rt.members[i])
	}
	switch {
	case !equalCampaign(orig, c) || len(events) > 0:
		// One transaction: a reader that sees the decision (completed, a new wave) sees the
		// member states it was taken from, and a stale copy writes neither.
		c.Version++
		c.UpdatedAt = now
		if err := m.store.SaveTick(ctx, c, batch, events...); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		rt.version = c.Version
		m.auditEvents(ctx, events)
		m.publish(events...)
	case len(batch) > 0:
		if err := m.store.SaveMembers(ctx, batch); err != nil {
			return fmt.Errorf("save members: %w", err)
		}
	}
	m.m.observe(c, Counts(rt.members, len(c.Plan.Waves)), starts)
	return nil
}
