package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes the dispatcher. Zero fields take the values of DefaultConfig.
type Config struct {
	// Workers bounds the requests in flight in all; PerSubscription those to one subscription.
	Workers         int
	PerSubscription int
	// Timeout bounds one request, answer included.
	Timeout time.Duration
	// Backoff spaces the attempts of one delivery.
	Backoff Backoff
	// MaxAttempts and MaxAge: a delivery that failed this many times, or would next be tried
	// later than MaxAge after it was queued, is dead.
	MaxAttempts int
	MaxAge      time.Duration
	// Poll is how often the dispatcher looks for due deliveries without being woken.
	Poll time.Duration
	// Node names this lwota in the lease that elects the one node delivering; LeaseTTL is how
	// long the lease lasts without renewal.
	Node     string
	LeaseTTL time.Duration
	// Retention: delivered deliveries are removed this long after they were delivered.
	Retention time.Duration
	// Client sends the requests; nil: a client that follows no redirects.
	Client *http.Client
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// DefaultConfig: 8 requests in flight (2 per subscription), 10 s per request, backoff from 2 s
// doubling to 10 min, dead after 20 attempts or 24 h, a poll every second, a 15 s lease, and
// delivered rows kept for 7 days.
func DefaultConfig() Config {
	return Config{Workers: 8, PerSubscription: 2, Timeout: 10 * time.Second,
		Backoff: Backoff{Base: 2 * time.Second, Max: 10 * time.Minute}, MaxAttempts: 20, MaxAge: 24 * time.Hour,
		Poll: time.Second, Node: "lwota", LeaseTTL: 15 * time.Second, Retention: 7 * 24 * time.Hour, Now: time.Now}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.PerSubscription <= 0 {
		c.PerSubscription = d.PerSubscription
	}
	c.PerSubscription = min(c.PerSubscription, c.Workers)
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.Backoff.Base <= 0 {
		c.Backoff.Base = d.Backoff.Base
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = d.Backoff.Max
	}
	c.Backoff.Max = max(c.Backoff.Max, c.Backoff.Base)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.MaxAge <= 0 {
		c.MaxAge = d.MaxAge
	}
	if c.Poll <= 0 {
		c.Poll = d.Poll
	}
	if c.Node == "" {
		c.Node = d.Node
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.Retention <= 0 {
		c.Retention = d.Retention
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Client == nil {
		c.Client = &http.Client{
			// A redirect is an answer, not a delivery: following it would send signed events to
			// a host nobody subscribed (and let a receiver steer lwota's requests).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
}

// leaseName is the lease of the node delivering webhooks.
const leaseName = "webhooks"

// dueBatch is how many due deliveries one look fetches; those of a subscription at its
// concurrency cap wait for the next look.
const dueBatch = 256

// Dispatcher delivers the outbox: on the node holding the lease, it sends every due delivery
// and stores each outcome. Build it with New; its methods are safe for concurrent use.
type Dispatcher struct {
	cfg   Config
	store Store
	log   *slog.Logger
	m     *metrics
	wake  chan struct{}

	mu       sync.Mutex
	inflight map[string]bool // delivery ids being sent
	// finished holds when each attempt's outcome was stored, until a look starts after it: a look
	// that began before then may have read the delivery as it was before that attempt.
	finished map[string]time.Time
	perSub   map[string]int // requests in flight by subscription
	slots    chan struct{}  // one per request in flight
	wg       sync.WaitGroup
}

// New returns a dispatcher over store. A nil logger discards logs; a nil reg registers no metrics.
func New(cfg Config, store Store, logger *slog.Logger, reg prometheus.Registerer) *Dispatcher {
	cfg.fill()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{cfg: cfg, store: store, log: logger, m: newMetrics(reg), wake: make(chan struct{}, 1),
		inflight: map[string]bool{}, finished: map[string]time.Time{}, perSub: map[string]int{}, slots: make(chan struct{}, cfg.Workers)}
}

// Wake makes the dispatcher look for due deliveries now (a new event was stored); it never waits.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// countEvery is how often the queue gauges are refreshed, pruneEvery how often delivered rows
// past the retention are removed.
const (
	countEvery = 5 * time.Second
	pruneEvery = time.Hour
	minGap     = 50 * time.Millisecond
)

// Run delivers until ctx ends, then waits for the requests in flight (their context ends too)
// and returns nil. Only the node holding the lease sends; the others look every Poll whether the
// lease is free.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.wg.Wait()
	tick := time.NewTicker(d.cfg.Poll)
	defer tick.Stop()
	var counted, pruned time.Time
	for {
		now := d.cfg.Now()
		leader, err := d.store.Lease(ctx, leaseName, d.cfg.Node, now, d.cfg.LeaseTTL)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook lease", "err", err)
		}
		if leader {
			d.dispatch(ctx, now)
			if now.Sub(counted) >= countEvery {
				counted = now
				d.count(ctx)
			}
			if now.Sub(pruned) >= pruneEvery {
				pruned = now
				if err := d.store.PruneDelivered(ctx, now.Add(-d.cfg.Retention)); err != nil && ctx.Err() == nil {
					d.log.Warn("prune delivered webhooks", "err", err)
				}
			}
		}
		// A campaign stores hundreds of transitions a second, each a wake: looks are spaced by
		// minGap so that a burst costs a few queries, not one per event.
		gap := time.NewTimer(minGap)
		select {
		case <-ctx.Done():
			gap.Stop()
			return nil
		case <-gap.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.wake:
		}
	}
}

func (d *Dispatcher) count(ctx context.Context) {
	pending, dead, err := d.store.CountDeliveries(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("count webhook deliveries", "err", err)
		}
		return
	}
	d.m.pending.Set(float64(pending))
	d.m.dead.Set(float64(dead))
}

// dispatch starts a request for each due delivery that is not in flight, while slots are free
// and its subscription is under its cap.
func (d *Dispatcher) dispatch(ctx context.Context, now time.Time) {
	if len(d.slots) == cap(d.slots) {
		return // every slot busy: a finishing request wakes the loop
	}
	// A delivery whose attempt ended after this look began is skipped: the row read may predate
	// that attempt's outcome (on a slow store, seen under load), and sending it again would send a
	// delivered event twice or count its attempts from a stale number. Its finishing wakes the loop.
	looked := time.Now()
	defer d.forgetFinished(looked)
	due, err := d.store.DueDeliveries(ctx, now, dueBatch)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("due webhook deliveries", "err", err)
		}
		return
	}
	subs := map[string]*Subscription{}
	for _, dl := range due {
		d.mu.Lock()
		busy := d.inflight[dl.ID] || d.finished[dl.ID].After(looked) || d.perSub[dl.SubscriptionID] >= d.cfg.PerSubscription
		d.mu.Unlock()
		if busy {
			continue
		}
		sub, ok := subs[dl.SubscriptionID]
		if !ok {
			sub, err = d.store.Subscription(ctx, dl.SubscriptionID)
			if err != nil {
				if !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
					d.log.Warn("webhook subscription", "subscription", dl.SubscriptionID, "err", err)
				}
				sub = nil // deleted meanwhile: its deliveries went with it
			}
			subs[dl.SubscriptionID] = sub
		}
		if sub == nil || !sub.Enabled {
			continue
		}
		select {
		case d.slots <- struct{}{}:
		default:
			return
		}
		d.mu.Lock()
		d.inflight[dl.ID] = true
		d.perSub[dl.SubscriptionID]++
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.deliver(ctx, sub, dl)
			d.mu.Lock()
			d.finished[dl.ID] = time.Now()
			delete(d.inflight, dl.ID)
			d.perSub[dl.SubscriptionID]--
			if d.perSub[dl.SubscriptionID] == 0 {
				delete(d.perSub, dl.SubscriptionID)
			}
			d.mu.Unlock()
			<-d.slots
			d.Wake() // a slot is free: deliveries held back by the caps may go now
		}()
	}
}

// forgetFinished drops the attempts that ended before a look began at looked: every later look
// reads their outcome.
func (d *Dispatcher) forgetFinished(looked time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, at := range d.finished {
		if at.Before(looked) {
			delete(d.finished, id)
		}
	}
}

// saveTimeout bounds the store write of an outcome, which outlives a shutdown's cancellation:
// a delivered request must be recorded, or it is sent once more after the restart.
const saveTimeout = 10 * time.Second

// deliver makes one attempt and stores its outcome. An attempt cut short by the dispatcher's
// own shutdown is not counted: the delivery stays as it was, due at once after a restart.
func (d *Dispatcher) deliver(ctx context.Context, sub *Subscription, dl *Delivery) {
	status, err := d.send(ctx, sub, dl)
	if ctx.Err() != nil && status == 0 {
		return
	}
	now := d.cfg.Now()
	dl.Attempts++
	dl.LastStatus = status
	outcome := outcomeDelivered
	switch {
	case err == nil:
		dl.State, dl.LastError, dl.EndedAt = StateDelivered, "", now
	default:
		dl.LastError = err.Error()
		next := now.Add(d.cfg.Backoff.Delay(dl.Attempts, rand.Float64()))
		if dl.Attempts >= d.cfg.MaxAttempts || next.Sub(dl.QueuedAt) > d.cfg.MaxAge {
			dl.State, dl.EndedAt, outcome = StateDead, now, outcomeDead
		} else {
			dl.NextAttemptAt, outcome = next, outcomeFailed
		}
	}
	d.m.attempts.WithLabelValues(outcome).Inc()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if serr := d.store.SaveAttempt(sctx, dl); serr != nil {
		d.log.Warn("store webhook attempt", "delivery", dl.ID, "outcome", outcome, "err", serr)
	}
	switch outcome {
	case outcomeDead:
		d.log.Warn("webhook delivery dead", "delivery", dl.ID, "url", sub.URL, "attempts", dl.Attempts, "err", err)
	case outcomeFailed:
		d.log.Debug("webhook delivery failed", "delivery", dl.ID, "attempts", dl.Attempts, "next", dl.NextAttemptAt, "err", err)
	}
}

// maxAnswer is how much of an answer's body is read (then dropped) so the connection is reused.
const maxAnswer = 64 << 10

// send posts dl to sub and returns the HTTP status (0 without an answer) and an error unless it
// was 2xx. The answer's body is never kept: a receiver's (or an internal host's) content must
// not reach the API's readers.
func (d *Dispatcher) send(ctx context.Context, sub *Subscription, dl *Delivery) (int, error) {
	body, err := Encode(dl)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	ts := d.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lwota-webhooks")
	req.Header.Set(HeaderDelivery, dl.ID)
	req.Header.Set(HeaderEvent, dl.EventType)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(sub.Secret, ts, body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // *url.Error repeats the URL, which the delivery's subscription shows already
		}
		return 0, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
