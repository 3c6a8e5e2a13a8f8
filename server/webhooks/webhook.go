// Package webhooks delivers stored events (job transitions, campaign events, device registrations)
// to subscribers' HTTP endpoints: HMAC-signed JSON, retried with backoff, dead-lettered, at least once.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lwota/lwota/server/events"
)

// Kinds a subscription may ask for: the events whose source is stored, so that the store can
// queue their deliveries in the same transaction. Notifications and request results are not
// stored and are not offered.
var Kinds = []string{events.KindUpdateJob, events.KindCampaign, events.KindRegistration}

// Event types of the registration kind that are delivered: a Register and a De-register. An
// update of a registration, and a lifetime running out (nothing is stored then), are not.
const (
	TypeRegistered   = events.TypeRegistered
	TypeDeregistered = events.TypeDeregistered
)

// Sentinel errors; the API maps them to 400 and 404.
var (
	ErrInvalid  = errors.New("webhooks: invalid")
	ErrNotFound = errors.New("webhooks: not found")
)

// Subscription is one receiver and the kinds of events it wants.
type Subscription struct {
	ID        string
	URL       string
	Kinds     []string
	Secret    string // the HMAC key; shown once, when created
	Enabled   bool
	CreatedAt time.Time
	CreatedBy string
}

// Wants reports whether s subscribes to kind.
func (s *Subscription) Wants(kind string) bool { return slices.Contains(s.Kinds, kind) }

// State is a delivery's state.
type State string

// A delivery is pending until its receiver answers 2xx (delivered) or it runs out of attempts or
// age (dead). An operator's retry makes any delivery pending again.
const (
	StatePending   State = "pending"
	StateDelivered State = "delivered"
	StateDead      State = "dead"
)

// Valid reports whether s is one of the states.
func (s State) Valid() bool { return s == StatePending || s == StateDelivered || s == StateDead }

// Delivery is one event for one subscription: the outbox row. Its ID is the subscription's id,
// a dot and the event's id, the same for every attempt and after any restart, so that receivers
// can drop duplicates.
type Delivery struct {
	ID             string
	SubscriptionID string
	EventID        string
	Kind           string // update_job, campaign, registration
	EventType      string // update_job, campaign, registered, deregistered
	Endpoint       string // the device, "" for campaign events
	At             time.Time
	Payload        json.RawMessage // the body's data
	State          State
	Attempts       int
	NextAttemptAt  time.Time
	QueuedAt       time.Time // created, or retried by an operator
	LastStatus     int       // HTTP status of the last attempt, 0 without an answer
	LastError      string
	EndedAt        time.Time // delivered or dead
}

// DeliveryFilter selects one subscription's deliveries, newest first.
type DeliveryFilter struct {
	SubscriptionID string
	State          State // "": every state
	Limit          int
}

// MaxURLLength and MaxSecretLength bound what a subscription stores.
const (
	MaxURLLength    = 2048
	MaxSecretLength = 256
	minSecretLength = 16
)

// NewSubscription validates a request for a subscription and returns it with an id and, when
// secret is empty, a generated secret. Errors match ErrInvalid and say what to fix.
func NewSubscription(rawURL string, kinds []string, secret string, enabled bool, by string, now time.Time) (*Subscription, error) {
	if err := CheckURL(rawURL); err != nil {
		return nil, err
	}
	ks, err := CheckKinds(kinds)
	if err != nil {
		return nil, err
	}
	switch {
	case secret == "":
		secret = newSecret()
	case len(secret) < minSecretLength || len(secret) > MaxSecretLength:
		return nil, fmt.Errorf("%w: secret must be %d to %d bytes", ErrInvalid, minSecretLength, MaxSecretLength)
	}
	return &Subscription{ID: "wh_" + newID(), URL: rawURL, Kinds: ks, Secret: secret, Enabled: enabled,
		CreatedAt: now.UTC(), CreatedBy: by}, nil
}

// CheckURL accepts absolute http and https URLs with a host and without credentials: nothing
// else (file:, gopher:, unix sockets) can be reached through a subscription.
func CheckURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: url is required", ErrInvalid)
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: url is longer than %d bytes", ErrInvalid, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: url: %v", ErrInvalid, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: url must be http:// or https://, not %q", ErrInvalid, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: url has no host", ErrInvalid)
	case u.User != nil:
		return fmt.Errorf("%w: url must not carry credentials: the signature authenticates lwota", ErrInvalid)
	case u.Fragment != "":
		return fmt.Errorf("%w: url must not have a fragment", ErrInvalid)
	}
	return nil
}

// CheckKinds validates kinds and returns them sorted without duplicates.
func CheckKinds(kinds []string) ([]string, error) {
	if len(kinds) == 0 {
		return nil, fmt.Errorf("%w: kinds must list at least one of %s", ErrInvalid, strings.Join(Kinds, ", "))
	}
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		k = strings.TrimSpace(k)
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("%w: kind %q is not one of %s", ErrInvalid, k, strings.Join(Kinds, ", "))
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 16 characters of 80 random bits.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return idEncoding.EncodeToString(b[:])
}

// newSecret returns 32 random bytes in hex.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Store keeps subscriptions and their deliveries. The store queues deliveries by itself, in
// the transactions that store their events; see the package README.
type Store interface {
	Subscriptions
	Deliveries
	// Lease takes or renews the named lease for holder until now+ttl, if it is free, expired or
	// the holder's already; it reports whether holder has it.
	Lease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
}

// Subscriptions is the subscription half of Store.
type Subscriptions interface {
	CreateSubscription(ctx context.Context, s *Subscription) error
	// Subscription returns one subscription or an error matching ErrNotFound.
	Subscription(ctx context.Context, id string) (*Subscription, error)
	// ListSubscriptions returns every subscription, oldest first.
	ListSubscriptions(ctx context.Context) ([]*Subscription, error)
	// DeleteSubscription removes a subscription and its deliveries, or fails with ErrNotFound.
	DeleteSubscription(ctx context.Context, id string) error
}

// Deliveries is the outbox half of Store.
type Deliveries interface {
	// ListDeliveries returns the deliveries f selects, newest first.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)
	// DueDeliveries returns up to limit pending deliveries of enabled subscriptions due at now,
	// the most overdue first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*Delivery, error)
	// SaveAttempt stores the outcome of an attempt on a pending delivery (State, Attempts,
	// NextAttemptAt, LastStatus, LastError, EndedAt); a delivery that is no longer pending, or
	// gone, is left alone.
	SaveAttempt(ctx context.Context, d *Delivery) error
	// RetryDelivery makes a delivery of subscription pending again with no attempts, due at
	// now, and returns it; ErrNotFound when there is no such delivery.
	RetryDelivery(ctx context.Context, subscriptionID, id string, now time.Time) (*Delivery, error)
	// CountDeliveries returns the number of pending and dead deliveries.
	CountDeliveries(ctx context.Context) (pending, dead int, err error)
	// PruneDelivered removes delivered deliveries that ended before before.
	PruneDelivered(ctx context.Context, before time.Time) error
}
