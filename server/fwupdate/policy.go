package fwupdate

import (
	"fmt"
	"time"
)

// Policy is how a job retries, times out and verifies. It is stored with the job, so that a job
// keeps the policy it started with.
type Policy struct {
	MaxAttempts int           // attempts before a retryable failure becomes final; at least 1
	BackoffBase time.Duration // wait before the second attempt; doubles per attempt
	BackoffMax  time.Duration // cap of the wait
	Strict      bool          // an unconfirmed version (device never changes /3/0/3) fails instead of succeeding
	MinLinkRate int           // bytes/s the slowest link is assumed to move (NB-IoT: ~512)
	StepSlack   time.Duration // added to every step timeout (handshakes, queue-mode wake-ups)
	BlockSize   int           // push block size in bytes (16..1024, a power of two); 0: 1024
}

// Defaults of DefaultPolicy.
const (
	DefaultMinLinkRate = 512 // bytes/s: NB-IoT moves about 0.5 KB/s

	waitTimeout      = 24 * time.Hour   // a queue-mode device may sleep most of a day
	downloadedTimout = 15 * time.Minute // from Downloaded to executing Update
	updatingTimeout  = time.Hour        // flash, reboot, register again over a slow link
	verifyingTimeout = 15 * time.Minute // read /5/0/5 and /3/0/3 after the new registration
)

// DefaultPolicy is three attempts, one minute of backoff doubling to an hour, a 512 bytes/s link
// and five minutes of slack per step, not strict.
func DefaultPolicy() Policy {
	return Policy{
		MaxAttempts: 3,
		BackoffBase: time.Minute,
		BackoffMax:  time.Hour,
		MinLinkRate: DefaultMinLinkRate,
		StepSlack:   5 * time.Minute,
	}
}

// Backoff is the wait before attempt+1 after attempt failed: BackoffBase doubled per attempt
// after the first, capped at BackoffMax. It is deterministic; attempt < 1 counts as 1.
func (p Policy) Backoff(attempt int) time.Duration {
	d := p.BackoffBase
	for i := 1; i < attempt && d < p.BackoffMax; i++ {
		d *= 2
	}
	if p.BackoffMax > 0 && d > p.BackoffMax {
		d = p.BackoffMax
	}
	return d
}

// StepTimeout is how long a job may stay in step before the driver gives up on it. Delivery
// scales with the image: imageSize / MinLinkRate, plus StepSlack (a 1 MiB image at 512 bytes/s
// gets 34 minutes and the slack). The other steps are fixed but generous. Queued and the terminal
// states have no timeout (0).
func (p Policy) StepTimeout(step State, imageSize int64) time.Duration {
	var d time.Duration
	switch step {
	case StateWaiting:
		d = waitTimeout
	case StateDelivering:
		rate := int64(p.MinLinkRate)
		if rate <= 0 {
			rate = DefaultMinLinkRate
		}
		secs := (max(imageSize, 0) + rate - 1) / rate
		d = time.Duration(secs) * time.Second
	case StateDownloaded:
		d = downloadedTimout
	case StateUpdating:
		d = updatingTimeout
	case StateVerifying:
		d = verifyingTimeout
	default:
		return 0
	}
	return d + p.StepSlack
}

// Action is what a Decision tells the driver to do.
type Action int

// Actions.
const (
	ActionWait    Action = iota // nothing final: keep the job where it is (result 0, or 11 until RetryAt)
	ActionRetry                 // fail this attempt and queue the next at RetryAt
	ActionFail                  // fail the job for good
	ActionSucceed               // the device reported success; verify the version next
	ActionCancel                // the device cancelled the update (result 10)
)

var actionNames = [...]string{"wait", "retry", "fail", "succeed", "cancel"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("Action(%d)", int(a))
	}
	return actionNames[a]
}

// Decision is the policy's answer to an Update Result.
type Decision struct {
	Action  Action
	RetryAt time.Time // ActionRetry: when the next attempt may start; ActionWait: when to ask again (zero: no deadline)
	Reason  string
}

// Decide maps an Update Result reported during job j to what happens next. Retryable results
// (3, 4, 5) retry after Backoff until MaxAttempts attempts have failed. Result 9 retries at once
// while untriedProtocol (another pull protocol the device supports remains, bounded by the
// protocols themselves), and is final otherwise. 2, 6, 7, 8 and unknown codes are final. 11
// (deferred) waits a backoff without spending an attempt; 10 cancels; 0 waits.
func (p Policy) Decide(j *Job, result int, untriedProtocol bool, now time.Time) Decision {
	reason, class := Reason(result)
	switch class {
	case ResultSuccess:
		return Decision{Action: ActionSucceed, Reason: reason}
	case ResultInitial:
		return Decision{Action: ActionWait, Reason: reason}
	case ResultDeferred:
		return Decision{Action: ActionWait, RetryAt: now.Add(p.Backoff(j.Attempt)), Reason: reason}
	case ResultCancelled:
		return Decision{Action: ActionCancel, Reason: reason}
	case ResultRetryable:
		if j.Attempt >= max(p.MaxAttempts, 1) {
			return Decision{Action: ActionFail, Reason: fmt.Sprintf("%s (gave up after %d attempts)", reason, j.Attempt)}
		}
		return Decision{Action: ActionRetry, RetryAt: now.Add(p.Backoff(j.Attempt)), Reason: reason}
	case ResultTerminalUnlessOtherProtocol:
		if untriedProtocol {
			return Decision{Action: ActionRetry, RetryAt: now, Reason: reason + "; trying another protocol"}
		}
		return Decision{Action: ActionFail, Reason: reason + "; no other protocol left"}
	}
	return Decision{Action: ActionFail, Reason: reason}
}

// Retry is the decision for a failure that is not the device's Update Result but may pass
// (the package could not be read from the blob store or the database, a delivery stalled):
// retry after Backoff until MaxAttempts attempts have failed, like a retryable result.
func (p Policy) Retry(j *Job, reason string, now time.Time) Decision {
	if j.Attempt >= max(p.MaxAttempts, 1) {
		return Decision{Action: ActionFail, Reason: fmt.Sprintf("%s (gave up after %d attempts)", reason, j.Attempt)}
	}
	return Decision{Action: ActionRetry, RetryAt: now.Add(p.Backoff(j.Attempt)), Reason: reason}
}

// NotConfirmed is the Reason of a job that succeeded although the device never changed /3/0/3.
const NotConfirmed = "version not confirmed"

// Verify decides a job in StateVerifying once the device registered again. result is /5/0/5,
// reportedVersion /3/0/3 (else /5/0/7), versionChanged whether it differs from the version before
// the update. Success needs result 1, or 0 on devices that reset it after Updating, and the
// reported version equal to j.ImageVersion, byte for byte ("1.4.2" is not "1.4.20"). When the
// device reports result 1 but never changes its version, the job succeeds with NotConfirmed, or
// fails when the policy is Strict. It returns StateSucceeded or StateFailed and the reason.
func (p Policy) Verify(j *Job, reportedVersion string, versionChanged bool, result int) (State, string) {
	reason, class := Reason(result)
	if class != ResultSuccess && class != ResultInitial {
		return StateFailed, reason
	}
	switch {
	case reportedVersion == j.ImageVersion:
		return StateSucceeded, ""
	case versionChanged:
		return StateFailed, fmt.Sprintf("device reports version %q, want %q", reportedVersion, j.ImageVersion)
	case class == ResultInitial:
		return StateFailed, fmt.Sprintf("no sign of the update: result 0 and version still %q", reportedVersion)
	case p.Strict:
		return StateFailed, NotConfirmed + " (strict policy)"
	}
	return StateSucceeded, NotConfirmed
}
