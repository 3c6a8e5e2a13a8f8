// Package campaigns rolls a firmware image out to a fleet: it selects the devices, splits them
// into waves, starts their updates through the firmware-update driver at a paced rate, and stops
// by itself when failures cross a threshold. Every transition is stored before it takes effect.
package campaigns

import (
	"time"

	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/server/fwupdate"
)

// State is where a campaign stands in its lifecycle.
type State string

// The lifecycle: draft -> scheduled -> running <-> paused -> completed | aborted | failed, with
// waiting-for-approval between waves whose gate needs an operator.
const (
	StateDraft           State = "draft"
	StateScheduled       State = "scheduled" // started, waiting for its start time
	StateRunning         State = "running"
	StatePaused          State = "paused"               // no update starts; in-flight ones finish
	StateWaitingApproval State = "waiting-for-approval" // a manual gate holds the next wave
	StateCompleted       State = "completed"            // every wave finished
	StateAborted         State = "aborted"              // stopped by an operator or a threshold
	StateFailed          State = "failed"               // cannot go on: a wave's gate can no longer be met
)

// States lists every state.
var States = []State{StateDraft, StateScheduled, StateRunning, StatePaused, StateWaitingApproval,
	StateCompleted, StateAborted, StateFailed}

// Ended reports whether s is final.
func (s State) Ended() bool {
	return s == StateCompleted || s == StateAborted || s == StateFailed
}

// Active reports whether a campaign in s holds its devices: every state but draft and the final ones.
func (s State) Active() bool { return s != StateDraft && !s.Ended() }

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// Campaign is one rollout of an image to the devices a selector picks.
type Campaign struct {
	ID           string
	Name         string
	ImageID      string
	ImageVersion string
	// Query is the selector (campaigns/selector), or "" when Endpoints lists the devices.
	Query     string
	Endpoints []string
	Method    string           // fwupdate.MethodPull, MethodPush or MethodAuto
	Policy    *fwupdate.Policy // nil: the driver's default
	Plan      plan.Plan

	State  State
	Reason string // why the campaign is in State, in words an operator can act on
	// Wave is the current wave, 0-based: devices of waves 0..Wave may start.
	Wave int
	// Gates keeps each wave's gate state (when its condition was first reached, approval).
	Gates []plan.GateState
	// WaveStarted is when each wave up to Wave started.
	WaveStarted []time.Time
	// Version increases by one on every save: a save of a stale copy fails (ErrStale).
	Version int
	// RetryRound counts the operators' retries; the leader gives the failed devices a new
	// attempt when it has handled fewer rounds (RetriesDone).
	RetryRound  int
	RetriesDone int
	// CancelInFlight asks the leader to cancel the updates still in flight (a hard abort, or a
	// schedule ending with cancel-in-flight).
	CancelInFlight bool
	// InFlight is the number of devices in progress when the leader last saved: an ended
	// campaign is still followed until it is 0.
	InFlight int

	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	StartedAt time.Time
	EndedAt   time.Time
}

// Followed reports whether the leader must still tick c: it is active, or it ended with updates
// in flight (a soft abort) or with a retry not yet handled.
func (c *Campaign) Followed() bool {
	return c.State.Active() || c.InFlight > 0 || c.RetryRound > c.RetriesDone
}

// Clone returns a deep copy.
func (c *Campaign) Clone() *Campaign {
	cp := *c
	cp.Endpoints = append([]string(nil), c.Endpoints...)
	cp.Gates = append([]plan.GateState(nil), c.Gates...)
	cp.WaveStarted = append([]time.Time(nil), c.WaveStarted...)
	cp.Plan.Waves = append([]plan.Wave(nil), c.Plan.Waves...)
	cp.Plan.Schedule.Windows = append([]plan.Window(nil), c.Plan.Schedule.Windows...)
	if c.Policy != nil {
		p := *c.Policy
		cp.Policy = &p
	}
	return &cp
}

// MemberState is where one device of a campaign stands.
type MemberState string

// Member states. A member is pending until its update starts, then in progress until its job
// ends; a retry puts a failed member back to pending.
const (
	MemberPending    MemberState = "pending"
	MemberInProgress MemberState = "in_progress"
	MemberSucceeded  MemberState = "succeeded"
	MemberUpToDate   MemberState = "already_up_to_date" // on the target version before the campaign reached it
	MemberFailed     MemberState = "failed"
	MemberCancelled  MemberState = "cancelled"
)

// MemberStates lists every member state.
var MemberStates = []MemberState{MemberPending, MemberInProgress, MemberSucceeded, MemberUpToDate, MemberFailed, MemberCancelled}

// Valid reports whether s is one of MemberStates.
func (s MemberState) Valid() bool {
	for _, v := range MemberStates {
		if v == s {
			return true
		}
	}
	return false
}

// Member is one device of a campaign.
type Member struct {
	CampaignID string
	Endpoint   string
	Wave       int    // 0-based
	Rank       int    // order of start within the wave
	CapLabel   string // the device's value of the plan's per-label cap key, "" without one
	State      MemberState
	JobID      string         // the update job of the current attempt, "" before the first
	JobState   fwupdate.State // the job's state as last seen
	Reason     string         // the failure or outcome, in words
	Attempts   int            // jobs started for this device by this campaign
	StartedAt  time.Time      // start of the current attempt
	// PendingSince is when the member last became pending: only a job created after it can be
	// this member's current attempt (older jobs are attempts a retry has replaced).
	PendingSince time.Time
	EndedAt      time.Time
	UpdatedAt    time.Time
}

// Event is one line of a campaign's history: a lifecycle transition, a wave start, an action.
// Who did it and why are kept, for the audit.
type Event struct {
	CampaignID string
	Seq        int
	At         time.Time
	From, To   State  // equal when the state did not change (a wave started, thresholds changed)
	Actor      string // the API token's name, or "lwota" for decisions the campaign made itself
	Action     string // create, start, pause, resume, abort, approve, retry, wave, complete, ...
	Reason     string
}

// Counts returns the members' counts per wave (index: wave) in plan.Counts terms.
func Counts(members []Member, waves int) []plan.Counts {
	out := make([]plan.Counts, waves)
	for _, m := range members {
		if m.Wave < 0 || m.Wave >= waves {
			continue
		}
		c := &out[m.Wave]
		switch m.State {
		case MemberPending:
			c.Pending++
		case MemberInProgress:
			c.InProgress++
		case MemberSucceeded:
			c.Succeeded++
		case MemberUpToDate:
			c.UpToDate++
		case MemberFailed:
			c.Failed++
		case MemberCancelled:
			c.Cancelled++
		}
	}
	return out
}

var timeZero time.Time
