// Package fwupdate is the firmware update job of one device: its states and transitions, the
// Object 5 result codes, the retry, timeout and verification policy, and the Store that persists it.
package fwupdate

import (
	"fmt"
	"time"
)

// State is where a job stands.
type State string

// The states of a job, in the order a successful update passes them.
const (
	StateQueued     State = "queued"     // created, or re-queued for a new attempt
	StateWaiting    State = "waiting"    // waiting for the device to register or wake up
	StateDelivering State = "delivering" // the package is on its way (push or pull)
	StateDownloaded State = "downloaded" // the device reports State 2 (Downloaded)
	StateUpdating   State = "updating"   // Update executed; the device is flashing and rebooting
	StateVerifying  State = "verifying"  // new registration seen; checking result and version
	StateSucceeded  State = "succeeded"  // terminal
	StateFailed     State = "failed"     // terminal unless a retry is scheduled (NextAttemptAt)
	StateCancelled  State = "cancelled"  // terminal
)

// States lists every state in order.
var States = []State{StateQueued, StateWaiting, StateDelivering, StateDownloaded, StateUpdating,
	StateVerifying, StateSucceeded, StateFailed, StateCancelled}

// Terminal reports whether nothing more happens to a job in s by itself: succeeded, failed or
// cancelled. A failed job with a retry scheduled is terminal too; only Apply(StateQueued) revives it.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Valid reports whether s is one of States.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Delivery methods.
const (
	MethodPull = "pull" // the device downloads from a Package URI
	MethodPush = "push" // lwota writes the package to /5/0/0 (Block1)
	MethodAuto = "auto" // pull when the device supports a protocol lwota offers, else push
)

// Deliveries: how one attempt gets the package to the device (Job.Delivery).
const (
	DeliveryPush  = "push"  // Block1 Write to /5/0/0
	DeliveryCoAP  = "coap"  // pull from lwota over CoAP
	DeliveryCoAPS = "coaps" // pull from lwota over CoAP over DTLS
	DeliveryHTTP  = "http"  // pull from the blob store's signed URL
	DeliveryHTTPS = "https" // pull from the blob store's signed URL over TLS
	// CoAP over TCP and over TLS (RFC 8323), /5/0/8 values 4 and 5.
	DeliveryCoAPTCP = "coap+tcp"  // pull from lwota over CoAP over TCP
	DeliveryCoAPTLS = "coaps+tcp" // pull from lwota over CoAP over TLS
)

// Unknown is DeviceState and DeviceResult before the device reported them.
const Unknown = -1

// Job is one device's firmware update: persisted on every transition, so that a restart resumes
// it where it stood.
type Job struct {
	ID           string
	Endpoint     string
	ImageID      string
	ImageVersion string // expected /3/0/3 after the update, compared exactly
	Method       string // MethodPull, MethodPush or MethodAuto
	Policy       Policy
	State        State
	Reason       string // why the job is in State (failure reason, "version not confirmed", ...)
	Attempt      int    // 1 for the first attempt
	Seq          int    // transitions so far (the history's last Seq)
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// StepAt is when the job last entered each state it has been in.
	StepAt         map[State]time.Time
	BytesDelivered int64
	ImageSize      int64
	DeviceState    int   // last /5/0/3 seen, Unknown before
	DeviceResult   int   // last /5/0/5 seen, Unknown before
	ProtocolsTried []int // /5/0/8 protocol numbers already tried for pull
	NextAttemptAt  time.Time
	CampaignID     string // "" for a job started on its own
	// FromVersion is the firmware version (/3/0/3) the device reported before this attempt's
	// delivery; verification compares against it to tell "not confirmed" from "changed".
	FromVersion string
	// Delivery is how this attempt delivers the package: a DeliveryPush or a pull protocol
	// (DeliveryCoAP, ...). It is stored before the transfer starts, so that a restart resumes the
	// transfer in flight instead of starting a second one; "" until chosen.
	Delivery string
}

// StartRequest is what a caller asks of a new job (Driver.Start).
type StartRequest struct {
	ImageID    string
	Method     string  // MethodPull, MethodPush or MethodAuto; "" is MethodAuto
	Policy     *Policy // nil: the driver's default policy
	CampaignID string  // "" for a job on its own
}

// Transition is one line of a job's history. It is stored with the job, before the driver acts on it.
type Transition struct {
	JobID        string
	Seq          int // 1 for the creation (From ""), then one more per transition
	From, To     State
	At           time.Time
	Reason       string
	DeviceState  int
	DeviceResult int
	Attempt      int
}

// NewJob returns a job in StateQueued for its first attempt, and the creation record for
// Store.CreateJob.
func NewJob(id, endpoint string, img ImageRef, method string, p Policy, campaignID string, at time.Time) (*Job, Transition) {
	j := &Job{
		ID: id, Endpoint: endpoint, ImageID: img.ID, ImageVersion: img.Version, ImageSize: img.Size,
		Method: method, Policy: p, State: StateQueued, Attempt: 1, Seq: 1,
		CreatedAt: at, UpdatedAt: at, StepAt: map[State]time.Time{StateQueued: at},
		DeviceState: Unknown, DeviceResult: Unknown, CampaignID: campaignID,
	}
	return j, j.record("", at, "")
}

// ImageRef is what a job needs of a firmware image.
type ImageRef struct {
	ID      string
	Version string
	Size    int64
}

// Active reports whether the job still holds its endpoint: not terminal, or failed with a retry
// scheduled. A device has at most one active job; ActiveJobs returns them after a restart.
func (j *Job) Active() bool { return !j.State.Terminal() || j.Retryable() }

// Retryable reports whether a failed job has a retry scheduled.
func (j *Job) Retryable() bool { return j.State == StateFailed && !j.NextAttemptAt.IsZero() }

// Apply moves the job to state to at time at, if the transition table allows it, and returns the
// history record to store with it. Re-queueing a failed job starts a new attempt: it needs a
// scheduled retry that is due at at, increments Attempt and resets the per-attempt progress.
// On error the job is unchanged.
func (j *Job) Apply(to State, at time.Time, reason string) (Transition, error) {
	if !allowed(j.State, to) {
		return Transition{}, fmt.Errorf("%w: job %s %s -> %s", ErrInvalidTransition, j.ID, j.State, to)
	}
	from := j.State
	if from == StateFailed {
		switch {
		case !j.Retryable():
			return Transition{}, fmt.Errorf("%w: job %s failed for good (%s)", ErrInvalidTransition, j.ID, j.Reason)
		case at.Before(j.NextAttemptAt):
			return Transition{}, fmt.Errorf("%w: job %s retry not due until %s", ErrInvalidTransition, j.ID,
				j.NextAttemptAt.Format(time.RFC3339))
		}
		j.Attempt++
		j.BytesDelivered = 0
		j.Delivery = ""
	}
	if to != StateFailed {
		j.NextAttemptAt = time.Time{}
	}
	j.State = to
	j.Reason = reason
	j.Seq++
	j.UpdatedAt = at
	if j.StepAt == nil {
		j.StepAt = make(map[State]time.Time)
	}
	j.StepAt[to] = at
	return j.record(from, at, reason), nil
}

// Settle applies a Decision: a retry fails the job with its retry scheduled at d.RetryAt, a
// failure fails it for good, a success completes it.
func (j *Job) Settle(d Decision, at time.Time) (Transition, error) {
	to := StateFailed
	if d.Action == ActionSucceed {
		to = StateSucceeded
	}
	tr, err := j.Apply(to, at, d.Reason)
	if err == nil && d.Action == ActionRetry {
		j.NextAttemptAt = d.RetryAt
	}
	return tr, err
}

func (j *Job) record(from State, at time.Time, reason string) Transition {
	return Transition{JobID: j.ID, Seq: j.Seq, From: from, To: j.State, At: at, Reason: reason,
		DeviceState: j.DeviceState, DeviceResult: j.DeviceResult, Attempt: j.Attempt}
}

// Clone returns a deep copy of j (StepAt and ProtocolsTried are not shared).
func (j *Job) Clone() *Job {
	c := *j
	if j.StepAt != nil {
		c.StepAt = make(map[State]time.Time, len(j.StepAt))
		for s, t := range j.StepAt {
			c.StepAt[s] = t
		}
	}
	if j.ProtocolsTried != nil {
		c.ProtocolsTried = append([]int(nil), j.ProtocolsTried...)
	}
	return &c
}
