package audit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrInvalid: an entry without an action, or a filter that cannot be served.
var ErrInvalid = errors.New("audit: invalid entry")

// Actors that are not API tokens. Tokens are "token:<id>" (apitoken.Token.Actor).
const (
	ActorSystem       = "system"  // lwota itself: a scheduler, a timer, start-up
	ActorDevicePrefix = "device:" // a device's own report: "device:<endpoint>"
)

// Outcomes of an entry.
const (
	OutcomeSuccess = "success" // done (an HTTP status below 400)
	OutcomeDenied  = "denied"  // refused for want of the right role (403)
	OutcomeFailure = "failure" // tried and failed (any other error)
)

// OutcomeOf is the outcome of an HTTP status.
func OutcomeOf(status int) string {
	switch {
	case status < 400:
		return OutcomeSuccess
	case status == 401 || status == 403:
		return OutcomeDenied
	}
	return OutcomeFailure
}

// Entry is one audit record.
type Entry struct {
	Seq        int64     // assigned by the store, increasing
	At         time.Time // when; Record fills in now when zero
	Actor      string    // "token:<id>", "device:<endpoint>" or "system"
	ActorName  string    // the token's name, for people; "" otherwise
	Role       string    // the token's role; "" for devices and the system
	Action     string    // "POST /api/v1/tokens" (method and route), or "update.state", "campaign.start", ...
	Target     string    // what it was done to: the request path, "update:<id>", "campaign:<id>"
	RemoteAddr string    // where the request came from (the TCP peer); "" for the system
	Status     int       // HTTP status of an API call; 0 otherwise
	Outcome    string    // OutcomeSuccess, OutcomeDenied or OutcomeFailure
	Detail     map[string]string
}

// Recorder takes audit entries. The API, the update driver and campaigns write through it.
type Recorder interface {
	Record(ctx context.Context, e Entry) error
}

// Filter selects entries, newest first. Zero fields do not filter.
type Filter struct {
	Actor  string    // exact
	Action string    // exact
	Since  time.Time // At >= Since
	Until  time.Time // At < Until
	Before int64     // Seq < Before: the cursor of the next page
	Limit  int       // at most this many; 0 means all
}

// Store persists entries. AppendAudit assigns Seq; ListAudit returns the entries matching the
// filter, highest Seq first.
type Store interface {
	AppendAudit(ctx context.Context, e *Entry) error
	ListAudit(ctx context.Context, f Filter) ([]*Entry, error)
}

// Log is the Recorder over a Store.
type Log struct {
	store Store
	now   func() time.Time
}

// New returns a Log writing to store.
func New(store Store) *Log { return &Log{store: store, now: time.Now} }

// Record stores e, with At set to now when zero and Outcome derived from Status when empty.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.Action == "" {
		return fmt.Errorf("%w: no action", ErrInvalid)
	}
	if e.At.IsZero() {
		e.At = l.now()
	}
	e.At = e.At.UTC()
	if e.Outcome == "" {
		e.Outcome = OutcomeOf(e.Status)
	}
	if e.Actor == "" {
		e.Actor = ActorSystem
	}
	return l.store.AppendAudit(ctx, &e)
}

// List returns the entries matching f, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]*Entry, error) {
	if f.Limit < 0 || f.Before < 0 {
		return nil, fmt.Errorf("%w: negative limit or cursor", ErrInvalid)
	}
	return l.store.ListAudit(ctx, f)
}
