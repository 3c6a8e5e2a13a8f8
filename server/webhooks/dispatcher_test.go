package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/sqlstore"
)

// The dispatcher runs over a real SQLite store and delivers to real HTTP servers on loopback.

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// register stores n Registers of distinct devices: one registration delivery each.
func register(t *testing.T, s *sqlstore.Store, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		r := &registration.Registration{ID: fmt.Sprintf("r%d", i), Endpoint: fmt.Sprintf("dev-%d", i), Version: "1.1",
			Lifetime: 300, Binding: "U", RegisteredAt: now, UpdatedAt: now, LastSeen: now}
		if err := s.SaveRegistration(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func subscribe(t *testing.T, d *webhooks.Dispatcher, url string) *webhooks.Subscription {
	t.Helper()
	sub, err := d.Create(context.Background(), url, []string{events.KindRegistration}, "", true, "test")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// run starts d and returns a stop that cancels it and waits for Run to return.
func run(t *testing.T, d *webhooks.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond (a store read) until it holds, for at most a generous minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func states(t *testing.T, s *sqlstore.Store, subID string) map[webhooks.State]int {
	t.Helper()
	ds, err := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: subID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[webhooks.State]int{}
	for _, d := range ds {
		out[d.State]++
	}
	return out
}

// fastConfig retries quickly so the tests take milliseconds.
func fastConfig() webhooks.Config {
	return webhooks.Config{Backoff: webhooks.Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		Poll: 10 * time.Millisecond, Node: "test"}
}

// TestDispatcherDelivers: each delivery arrives signed, with its headers and body, and is
// stored as delivered.
func TestDispatcherDelivers(t *testing.T) {
	s := openStore(t)
	type got struct {
		header http.Header
		body   []byte
	}
	hits := make(chan got, 10)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rx.Close()
	reg := prometheus.NewRegistry()
	d := webhooks.New(fastConfig(), s, nil, reg)
	sub := subscribe(t, d, rx.URL+"/hook")
	register(t, s, 3)
	run(t, d)
	seen := map[string]bool{}
	for range 3 {
		var h got
		select {
		case h = <-hits:
		case <-time.After(time.Minute):
			t.Fatal("no delivery")
		}
		if err := webhooks.Verify(sub.Secret, h.header.Get(webhooks.HeaderTimestamp), h.header.Get(webhooks.HeaderSignature), h.body,
			time.Now(), 5*time.Minute); err != nil {
			t.Fatalf("signature: %v", err)
		}
		var b webhooks.Body
		if err := json.Unmarshal(h.body, &b); err != nil {
			t.Fatal(err)
		}
		if b.ID != h.header.Get(webhooks.HeaderDelivery) || b.Type != events.TypeRegistered || h.header.Get(webhooks.HeaderEvent) != b.Type ||
			b.Kind != events.KindRegistration || b.Subscription != sub.ID || b.Endpoint == "" || h.header.Get("Content-Type") != "application/json" {
			t.Fatalf("delivery %s: %+v", h.header, b)
		}
		var data struct {
			Endpoint string `json:"endpoint"`
		}
		if err := json.Unmarshal(b.Data, &data); err != nil || data.Endpoint != b.Endpoint {
			t.Fatalf("data %s: %v", b.Data, err)
		}
		seen[b.ID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("delivery ids %v, want 3 distinct", seen)
	}
	waitFor(t, "3 delivered", func() bool { return states(t, s, sub.ID)[webhooks.StateDelivered] == 3 })
	if n := testutil.ToFloat64(counter(t, reg, "delivered")); n != 3 {
		t.Fatalf("delivered counter = %v", n)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, outcome string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "lwota_webhook_deliveries_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == outcome {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return -1
	})
}

// collectorFunc turns a number into a gauge collector testutil.ToFloat64 can read.
func collectorFunc(f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, f)
}

// TestDispatcherRetriesThenRecovers: a receiver answering 500 gets the same delivery again,
// spaced by the backoff, until it answers 2xx.
func TestDispatcherRetriesThenRecovers(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	var mu sync.Mutex
	ids := map[string]int{}
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids[r.Header.Get(webhooks.HeaderDelivery)]++
		mu.Unlock()
		if calls.Add(1) <= 3 {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rx.Close()
	d := webhooks.New(fastConfig(), s, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 1)
	run(t, d)
	waitFor(t, "delivered", func() bool { return states(t, s, sub.ID)[webhooks.StateDelivered] == 1 })
	ds, _ := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: sub.ID})
	if ds[0].Attempts != 4 || ds[0].LastStatus != 200 || ds[0].LastError != "" {
		t.Fatalf("delivery = %+v, want 4 attempts ending in 200", ds[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids[ds[0].ID] != 4 {
		t.Fatalf("receiver saw %v, want one delivery id 4 times", ids)
	}
}

// TestDispatcherDeadLetter: after MaxAttempts failures the delivery is dead, is not tried again,
// and a retry makes it deliverable.
func TestDispatcherDeadLetter(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	var healthy atomic.Bool
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer rx.Close()
	cfg := fastConfig()
	cfg.MaxAttempts = 3
	reg := prometheus.NewRegistry()
	d := webhooks.New(cfg, s, nil, reg)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 1)
	run(t, d)
	waitFor(t, "dead", func() bool { return states(t, s, sub.ID)[webhooks.StateDead] == 1 })
	ds, _ := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: sub.ID, State: webhooks.StateDead})
	if ds[0].Attempts != 3 || ds[0].LastStatus != 503 || ds[0].EndedAt.IsZero() {
		t.Fatalf("dead letter = %+v", ds[0])
	}
	waitFor(t, "dead letter gauge", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "lwota_webhook_dead_letters" {
				return mf.GetMetric()[0].GetGauge().GetValue() == 1
			}
		}
		return false
	})
	if n := calls.Load(); n != 3 {
		t.Fatalf("receiver called %d times, want 3", n)
	}
	healthy.Store(true)
	if _, err := d.Retry(context.Background(), sub.ID, ds[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivered", func() bool { return states(t, s, sub.ID)[webhooks.StateDelivered] == 1 })
	if n := calls.Load(); n != 4 {
		t.Fatalf("receiver called %d times after the retry, want 4", n)
	}
}

// TestDispatcherFollowsNoRedirect: a 3xx is a failed attempt; the redirect target never hears
// from lwota.
func TestDispatcherFollowsNoRedirect(t *testing.T) {
	s := openStore(t)
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer rx.Close()
	cfg := fastConfig()
	cfg.MaxAttempts = 1
	d := webhooks.New(cfg, s, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 1)
	run(t, d)
	waitFor(t, "dead", func() bool { return states(t, s, sub.ID)[webhooks.StateDead] == 1 })
	ds, _ := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: sub.ID})
	if ds[0].LastStatus != http.StatusTemporaryRedirect || elsewhere.Load() != 0 {
		t.Fatalf("delivery = %+v, redirect target hit %d times", ds[0], elsewhere.Load())
	}
}

// TestDispatcherConcurrencyCap: no more requests to one subscription at once than PerSubscription.
func TestDispatcherConcurrencyCap(t *testing.T) {
	s := openStore(t)
	var now, peak atomic.Int32
	release := make(chan struct{})
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		now.Add(-1)
	}))
	defer rx.Close()
	cfg := fastConfig()
	cfg.Workers, cfg.PerSubscription = 8, 2
	d := webhooks.New(cfg, s, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 6)
	run(t, d)
	waitFor(t, "two requests in flight", func() bool { return now.Load() == 2 })
	// Let the dispatcher look several more times while both are held.
	for range 5 {
		d.Wake()
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	waitFor(t, "all delivered", func() bool { return states(t, s, sub.ID)[webhooks.StateDelivered] == 6 })
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrency %d, want 2", p)
	}
}

// leaseCounter counts the dispatcher's lease calls.
type leaseCounter struct {
	*sqlstore.Store
	calls atomic.Int32
}

func (l *leaseCounter) Lease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	defer l.calls.Add(1)
	return l.Store.Lease(ctx, name, holder, now, ttl)
}

// TestDispatcherLease: a node without the lease sends nothing; once the lease is free it does.
func TestDispatcherLease(t *testing.T) {
	s := openStore(t)
	var calls atomic.Int32
	rx := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer rx.Close()
	start := time.Now()
	if ok, err := s.Lease(context.Background(), "webhooks", "other-node", start, 2*time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	lc := &leaseCounter{Store: s}
	d := webhooks.New(fastConfig(), lc, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 1)
	run(t, d)
	waitFor(t, "lease attempts", func() bool { return lc.calls.Load() >= 5 })
	if time.Since(start) < 2*time.Second && calls.Load() != 0 {
		t.Fatalf("delivered while another node held the lease")
	}
	waitFor(t, "delivered after the lease expired", func() bool { return states(t, s, sub.ID)[webhooks.StateDelivered] == 1 })
}

// TestDispatcherShutdown: Run returns promptly with a request in flight, and that attempt is not
// counted: the delivery is still pending, due, with no attempts.
func TestDispatcherShutdown(t *testing.T) {
	s := openStore(t)
	arrived := make(chan struct{}, 1)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a closed connection once the body is read
		arrived <- struct{}{}
		<-r.Context().Done() // never answers
	}))
	defer rx.Close()
	cfg := fastConfig()
	cfg.Timeout = time.Hour
	d := webhooks.New(cfg, s, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, s, 1)
	stop := run(t, d)
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatal("no request")
	}
	stop()
	ds, _ := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: sub.ID})
	if ds[0].State != webhooks.StatePending || ds[0].Attempts != 0 {
		t.Fatalf("after shutdown: %+v, want pending with no attempts", ds[0])
	}
}

// staleLookStore holds the dispatcher's second look for due deliveries until the attempt in
// flight has stored its outcome, and only then returns the rows it read before: the order a
// loaded machine produced in CI.
type staleLookStore struct {
	webhooks.Store
	looks   atomic.Int32
	read    chan struct{} // closed once the held look has read its rows
	saved   chan struct{} // gets a value after each stored attempt
	release chan struct{} // closed once the held look may return
}

func (s *staleLookStore) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*webhooks.Delivery, error) {
	ds, err := s.Store.DueDeliveries(ctx, now, limit)
	if s.looks.Add(1) == 2 {
		close(s.read)
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	}
	return ds, err
}

func (s *staleLookStore) SaveAttempt(ctx context.Context, d *webhooks.Delivery) error {
	err := s.Store.SaveAttempt(ctx, d)
	s.saved <- struct{}{}
	return err
}

// TestDispatcherSkipsRowsReadBeforeAnAttemptEnded: a look whose rows were read while an attempt
// was in flight, and that returns after the attempt stored its outcome, does not send that
// delivery again from the stale row. Before the fix it sent it once more, counting attempts from
// the stale number (3 attempts stored for 4 sent) and able to send a delivered event twice.
func TestDispatcherSkipsRowsReadBeforeAnAttemptEnded(t *testing.T) {
	base := openStore(t)
	s := &staleLookStore{Store: base, read: make(chan struct{}), saved: make(chan struct{}, 16), release: make(chan struct{})}
	var calls atomic.Int32
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-s.read // the first attempt is in flight while the second look reads
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rx.Close()
	d := webhooks.New(fastConfig(), s, nil, nil)
	sub := subscribe(t, d, rx.URL)
	register(t, base, 1)
	run(t, d)
	select {
	case <-s.saved: // the first attempt's 500 is stored
	case <-time.After(time.Minute):
		t.Fatal("the first attempt never ended")
	}
	close(s.release)
	waitFor(t, "delivered", func() bool { return states(t, base, sub.ID)[webhooks.StateDelivered] == 1 })
	ds, err := base.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: sub.ID})
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); ds[0].Attempts != 2 || n != 2 {
		t.Fatalf("receiver got %d requests, delivery stored %d attempts; want 2 and 2", n, ds[0].Attempts)
	}
}
