// Package plan holds a campaign's rollout plan and the pure decisions made from it: validation,
// wave assignment, failure thresholds, gates, pacing and maintenance windows.
package plan

import "time"

// Plan is how a campaign rolls an image out. The zero value of every optional part means "off"
// (no spreading, no threshold, no pacing limit, no schedule); README.md lists every rule.
type Plan struct {
	// Waves are cumulative targets: each wave brings the share of the fleet that has been
	// offered the update up to its Percent or Count. The last must be Percent 100.
	Waves []Wave
	// SpreadBy is a label key (such as "cell"); when set, every wave samples each value of the
	// label in proportion to its share of the fleet.
	SpreadBy string
	// WaveThreshold is checked against each wave's own counts, unless the wave has its own.
	WaveThreshold FailureThreshold
	// OverallThreshold is checked against the whole campaign's counts.
	OverallThreshold FailureThreshold
	Pacing           Pacing
	Retries          Retries
	Schedule         Schedule
	// DynamicMembership lets devices that match the selector after the start join the campaign.
	DynamicMembership bool
}

// Wave is one step of the rollout. Exactly one of Percent and Count is set.
type Wave struct {
	Percent   float64           // cumulative share of the fleet, in (0, 100]
	Count     int               // or: cumulative number of devices, at least 1
	Gate      Gate              // what must hold before the next wave starts
	Soak      time.Duration     // wait after the gate condition holds, before the next wave starts
	Threshold *FailureThreshold // replaces Plan.WaveThreshold for this wave
}

// Gate is the condition on a wave for the next wave to start.
type Gate struct {
	// SuccessPercent is the share of the wave's devices that must have succeeded (or been up to
	// date already). 0 means: every device of the wave has finished, whatever the outcome.
	SuccessPercent float64
	// Manual asks an operator to approve, once the condition holds and the soak has passed.
	Manual bool
}

// FailureThreshold stops a wave or the campaign when too many updates fail. Percent and Count
// are independent rules; 0 disables a rule, so the zero value never trips.
type FailureThreshold struct {
	Percent    float64 // trips when failed/finished is over Percent, in [0, 100]
	MinDevices int     // ... and at least MinDevices devices have finished
	Count      int     // trips when failed reaches Count
	Action     Action  // ActionPause or ActionAbort
}

// Action is what a threshold does when it trips, and the verdict of CheckThresholds.
type Action string

// Actions.
const (
	ActionContinue Action = "continue"
	ActionPause    Action = "pause"
	ActionAbort    Action = "abort"
)

// Pacing limits how fast updates start. 0 is "no limit" for every number.
type Pacing struct {
	MaxConcurrent      int      // updates in progress at once
	MaxStartsPerMinute int      // starts in any 60 s (sliding window)
	Ramp               Ramp     // a start rate that grows with successes
	PerLabelCap        LabelCap // updates in progress at once per value of a label
}

// Ramp is an exponential start rate: Base × Factor^⌊successes / Every⌋ starts per minute,
// capped by MaxStartsPerMinute. The zero value is off.
type Ramp struct {
	Base   float64 // starts per minute before any success, > 0
	Factor float64 // growth per step, >= 1
	Every  int     // successes per step, >= 1
}

// LabelCap limits the updates in progress among devices sharing a label value (no more than
// Max downloading at once in one cell). The zero value is off.
type LabelCap struct {
	Key string
	Max int
}

// Retries are the per-device timeout and the extra attempts per failure class.
type Retries struct {
	// InProgressTimeout fails an update that has been in progress this long, as a retryable
	// failure; 0 leaves it to the firmware-update driver's step timeouts.
	InProgressTimeout time.Duration
	Retryable         int // extra attempts after a retryable failure (a lost connection, a timeout)
	Terminal          int // extra attempts after a terminal failure (not enough flash); usually 0
}

// Schedule is when a campaign may start updates.
type Schedule struct {
	StartAt   time.Time // zero: when it is started
	EndAt     time.Time // zero: no end
	EndAction EndAction // what happens at EndAt; required with EndAt
	Windows   []Window  // no new update starts outside every window; none: always
}

// EndAction is what a campaign does at Schedule.EndAt.
type EndAction string

// End actions.
const (
	EndStopStarting   EndAction = "stop-starting"    // in-flight updates finish, no new one starts
	EndCancelInFlight EndAction = "cancel-in-flight" // and in-flight updates are cancelled
)

// Window is a maintenance window: it opens each time Cron fires in TimeZone and stays open for
// Duration.
type Window struct {
	Cron     string        // five fields (minute hour day-of-month month day-of-week) or @daily, @weekly, ...
	Duration time.Duration // > 0
	TimeZone string        // IANA name such as "Europe/Berlin"; empty is UTC
}

// Counts are the devices of a wave (or of the campaign) per state.
type Counts struct {
	Pending    int // not started yet
	InProgress int
	Succeeded  int
	UpToDate   int // already on the target version: counts toward a gate, not as an update
	Failed     int // for good: retries exhausted
	Cancelled  int
}

// Total is the number of devices counted.
func (c Counts) Total() int {
	return c.Pending + c.InProgress + c.Succeeded + c.UpToDate + c.Failed + c.Cancelled
}

// Settled reports whether no device is pending or in progress.
func (c Counts) Settled() bool { return c.Pending == 0 && c.InProgress == 0 }

func (c Counts) add(o Counts) Counts {
	return Counts{c.Pending + o.Pending, c.InProgress + o.InProgress, c.Succeeded + o.Succeeded,
		c.UpToDate + o.UpToDate, c.Failed + o.Failed, c.Cancelled + o.Cancelled}
}
