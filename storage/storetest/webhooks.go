package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
)

// WebhookStore is a webhooks.Store that also stores the events webhooks announce: the outbox
// contract is that storing one queues its deliveries.
type WebhookStore interface {
	webhooks.Store
	jobsAndImages
	campaigns.Store
	registration.Store
}

// RunWebhooks is the contract of webhooks.Store and of its outbox.
func RunWebhooks(t *testing.T, open func(t *testing.T) WebhookStore) {
	parallel(t, "Subscriptions", open, testWebhookSubscriptions)
	parallel(t, "OutboxJobTransitions", open, testWebhookOutboxJobs)
	parallel(t, "OutboxCampaignEvents", open, testWebhookOutboxCampaigns)
	parallel(t, "OutboxRegistrations", open, testWebhookOutboxRegistrations)
	parallel(t, "Attempts", open, testWebhookAttempts)
	t.Run("OutboxRegistrationKeepingInfo", func(t *testing.T) { testWebhookOutboxKeepingInfo(t, open) })
}

func mustSubscribe(t *testing.T, s webhooks.Store, enabled bool, kinds ...string) *webhooks.Subscription {
	t.Helper()
	sub, err := webhooks.NewSubscription("https://hooks.example.com/lwota", kinds, "", enabled, "token:alice", at(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSubscription(context.Background(), sub); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	return sub
}

func deliveries(t *testing.T, s webhooks.Store, subID string, state webhooks.State) []*webhooks.Delivery {
	t.Helper()
	ds, err := s.ListDeliveries(context.Background(), webhooks.DeliveryFilter{SubscriptionID: subID, State: state, Limit: 1000})
	if err != nil {
		t.Fatalf("ListDeliveries(%s): %v", subID, err)
	}
	return ds
}

func eventIDs(ds []*webhooks.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.EventID
	}
	slices.Sort(out)
	return out
}

func testWebhookSubscriptions(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	if _, err := s.Subscription(ctx, "wh_missing"); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("Subscription(missing) = %v, want ErrNotFound", err)
	}
	a := mustSubscribe(t, s, true, events.KindUpdateJob, events.KindCampaign)
	b := mustSubscribe(t, s, false, events.KindRegistration)
	got, err := s.Subscription(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != a.URL || !slices.Equal(got.Kinds, a.Kinds) || got.Secret != a.Secret || !got.Enabled ||
		!got.CreatedAt.Equal(utc(a.CreatedAt)) || got.CreatedBy != "token:alice" {
		t.Fatalf("Subscription = %+v, want %+v", got, a)
	}
	list, err := s.ListSubscriptions(ctx)
	if err != nil || len(list) != 2 || list[0].Enabled == list[1].Enabled {
		t.Fatalf("ListSubscriptions = %+v, %v; want a and the disabled b", list, err)
	}
	// Deleting takes the deliveries along.
	j, tr := newJob("jwh-del", "urn:dev:whdel")
	mustCreateJob(t, withImages{s}, j, tr)
	if n := len(deliveries(t, s, a.ID, "")); n != 1 {
		t.Fatalf("%d deliveries before delete, want 1", n)
	}
	if err := s.DeleteSubscription(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubscription(ctx, a.ID); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
	if n := len(deliveries(t, s, a.ID, "")); n != 0 {
		t.Fatalf("%d deliveries of a deleted subscription", n)
	}
	if _, err := s.Subscription(ctx, b.ID); err != nil {
		t.Fatalf("the other subscription: %v", err)
	}
}

// testWebhookOutboxJobs: every stored transition of a job queues one delivery for each enabled
// subscription of update_job, none for others, and a refused (stale) transition queues nothing.
func testWebhookOutboxJobs(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	jobs := mustSubscribe(t, s, true, events.KindUpdateJob)
	both := mustSubscribe(t, s, true, events.KindCampaign, events.KindUpdateJob)
	other := mustSubscribe(t, s, true, events.KindCampaign)
	off := mustSubscribe(t, s, false, events.KindUpdateJob)

	j, created := newJob("jwh1", "urn:dev:wh1")
	j.CampaignID = "cmp_wh"
	mustCreateJob(t, withImages{s}, j, created)
	step(t, s, j, fwupdate.StateDelivering, at(time.Second), "")
	stale := *j
	step(t, s, j, fwupdate.StateDownloaded, at(2*time.Second), "")
	// A transition from a copy that is one step behind is refused and queues nothing.
	if tr, err := stale.Apply(fwupdate.StateFailed, at(3*time.Second), "late"); err != nil {
		t.Fatal(err)
	} else if err := s.SaveTransition(ctx, &stale, tr); !errors.Is(err, fwupdate.ErrStaleJob) {
		t.Fatalf("stale SaveTransition = %v, want ErrStaleJob", err)
	}
	want := []string{"job.jwh1.1", "job.jwh1.2", "job.jwh1.3"}
	for _, sub := range []*webhooks.Subscription{jobs, both} {
		ds := deliveries(t, s, sub.ID, webhooks.StatePending)
		if got := eventIDs(ds); !slices.Equal(got, want) {
			t.Fatalf("deliveries of %s = %v, want %v", sub.ID, got, want)
		}
		for _, d := range ds {
			if d.ID != sub.ID+"."+d.EventID || d.Kind != events.KindUpdateJob || d.EventType != events.TypeUpdateJob ||
				d.Endpoint != "urn:dev:wh1" || d.Attempts != 0 || d.State != webhooks.StatePending || !d.QueuedAt.Equal(d.At) {
				t.Fatalf("delivery = %+v", d)
			}
			var data events.JobTransition
			if err := json.Unmarshal(d.Payload, &data); err != nil {
				t.Fatalf("payload %s: %v", d.Payload, err)
			}
			if data.JobID != "jwh1" || data.CampaignID != "cmp_wh" || data.ImageVersion != "1.4.2" {
				t.Fatalf("payload = %+v", data)
			}
			if d.EventID == "job.jwh1.3" && (data.From != string(fwupdate.StateDelivering) || data.To != string(fwupdate.StateDownloaded) ||
				!d.At.Equal(utc(at(2*time.Second)))) {
				t.Fatalf("third transition = %+v at %s", data, d.At)
			}
		}
	}
	for _, sub := range []*webhooks.Subscription{other, off} {
		if ds := deliveries(t, s, sub.ID, ""); len(ds) != 0 {
			t.Fatalf("subscription %v got %d job deliveries", sub.Kinds, len(ds))
		}
	}
}

func testWebhookOutboxCampaigns(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	sub := mustSubscribe(t, s, true, events.KindCampaign)
	c := mustCreateCampaign(t, s, "cmp_wh1", "a", "b")
	c.State, c.Version = campaigns.StateRunning, c.Version+1
	if err := s.SaveCampaign(ctx, c,
		campaigns.Event{At: at(time.Minute), From: campaigns.StateDraft, To: campaigns.StateRunning, Actor: "bob", Action: "start"},
		campaigns.Event{At: at(time.Minute), From: campaigns.StateRunning, To: campaigns.StateRunning, Actor: "lwota", Action: "wave", Reason: "wave 1"}); err != nil {
		t.Fatal(err)
	}
	// A stale save stores no event and queues no delivery.
	if err := s.SaveCampaign(ctx, c, campaigns.Event{At: at(time.Hour), Action: "pause"}); !errors.Is(err, campaigns.ErrStale) {
		t.Fatalf("stale SaveCampaign = %v, want ErrStale", err)
	}
	ds := deliveries(t, s, sub.ID, "")
	if got, want := eventIDs(ds), []string{"cmp.cmp_wh1.1", "cmp.cmp_wh1.2", "cmp.cmp_wh1.3"}; !slices.Equal(got, want) {
		t.Fatalf("campaign deliveries = %v, want %v", got, want)
	}
	for _, d := range ds {
		var data events.CampaignChange
		if err := json.Unmarshal(d.Payload, &data); err != nil {
			t.Fatal(err)
		}
		if d.EventType != events.TypeCampaign || data.CampaignID != "cmp_wh1" {
			t.Fatalf("delivery %+v data %+v", d, data)
		}
		if d.EventID == "cmp.cmp_wh1.3" && (data.Action != "wave" || data.Reason != "wave 1") {
			t.Fatalf("third event = %+v", data)
		}
	}
}

// testWebhookOutboxRegistrations: a Register and a De-register queue one delivery each; the
// saves between them (Updates) queue nothing.
func testWebhookOutboxRegistrations(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	sub := mustSubscribe(t, s, true, events.KindRegistration)
	r := fullRegistration("urn:dev:whreg/1")
	for range 3 { // Register, then two Updates
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.UpdatedAt = r.UpdatedAt.Add(time.Minute)
	}
	r.DeregisteredAt = at(time.Hour)
	if err := s.SaveRegistration(ctx, r); err != nil {
		t.Fatal(err)
	}
	ds := deliveries(t, s, sub.ID, "")
	types := map[string]int{}
	for _, d := range ds {
		types[d.EventType]++
		if d.Endpoint != r.Endpoint || strings.Contains(d.ID, "/") {
			t.Fatalf("delivery = %+v (the id must hold no endpoint characters)", d)
		}
	}
	if len(ds) != 2 || types[events.TypeRegistered] != 1 || types[events.TypeDeregistered] != 1 {
		t.Fatalf("registration deliveries = %v, want one registered and one deregistered", types)
	}
	// A new registration of the same endpoint is a new event.
	r2 := fullRegistration("urn:dev:whreg/1")
	r2.ID = "other"
	if err := s.SaveRegistration(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if n := len(deliveries(t, s, sub.ID, "")); n != 3 {
		t.Fatalf("%d deliveries after a second Register, want 3", n)
	}
}

func testWebhookAttempts(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	sub := mustSubscribe(t, s, true, events.KindUpdateJob)
	off := mustSubscribe(t, s, false, events.KindUpdateJob)
	j, created := newJob("jwh2", "urn:dev:wh2")
	mustCreateJob(t, withImages{s}, j, created)
	step(t, s, j, fwupdate.StateDelivering, at(time.Second), "")
	step(t, s, j, fwupdate.StateDownloaded, at(2*time.Second), "")

	due, err := s.DueDeliveries(ctx, at(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := eventIDs(due); !slices.Equal(got, []string{"job.jwh2.1", "job.jwh2.2"}) {
		t.Fatalf("due at +1s = %v, want the first two (and none of the disabled subscription)", got)
	}
	if due[0].EventID != "job.jwh2.1" {
		t.Fatalf("due order = %v, want the most overdue first", eventIDs(due))
	}
	if due, _ := s.DueDeliveries(ctx, at(time.Hour), 1); len(due) != 1 {
		t.Fatalf("limit 1 gave %d", len(due))
	}
	// A failed attempt moves it out of the due list until its next attempt.
	d := due[0]
	d.Attempts, d.LastStatus, d.LastError, d.NextAttemptAt = 1, 500, "HTTP 500", at(time.Minute)
	if err := s.SaveAttempt(ctx, d); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueDeliveries(ctx, at(30*time.Second), 10); slices.Contains(eventIDs(due), d.EventID) {
		t.Fatalf("%s due before its next attempt", d.ID)
	}
	// Delivered and dead.
	all := deliveries(t, s, sub.ID, webhooks.StatePending)
	byEvent := map[string]*webhooks.Delivery{}
	for _, x := range all {
		byEvent[x.EventID] = x
	}
	got := byEvent[d.EventID]
	if got.Attempts != 1 || got.LastStatus != 500 || got.LastError != "HTTP 500" || !got.NextAttemptAt.Equal(utc(at(time.Minute))) {
		t.Fatalf("after a failed attempt: %+v", got)
	}
	dead := byEvent["job.jwh2.2"]
	dead.State, dead.Attempts, dead.EndedAt, dead.LastError = webhooks.StateDead, 20, at(time.Hour), "HTTP 503"
	if err := s.SaveAttempt(ctx, dead); err != nil {
		t.Fatal(err)
	}
	done := byEvent["job.jwh2.3"]
	done.State, done.Attempts, done.EndedAt, done.LastStatus = webhooks.StateDelivered, 1, at(3*time.Second), 204
	if err := s.SaveAttempt(ctx, done); err != nil {
		t.Fatal(err)
	}
	// An attempt on a delivery that is no longer pending changes nothing.
	late := *done
	late.State, late.Attempts = webhooks.StateDead, 9
	if err := s.SaveAttempt(ctx, &late); err != nil {
		t.Fatal(err)
	}
	if ds := deliveries(t, s, sub.ID, webhooks.StateDead); len(ds) != 1 || ds[0].ID != dead.ID || ds[0].LastError != "HTTP 503" ||
		!ds[0].EndedAt.Equal(utc(at(time.Hour))) {
		t.Fatalf("dead letters = %+v, want %s", ds, dead.ID)
	}
	if ds := deliveries(t, s, sub.ID, webhooks.StateDelivered); len(ds) != 1 || ds[0].ID != done.ID || ds[0].Attempts != 1 {
		t.Fatalf("delivered = %+v, want %s once", ds, done.ID)
	}
	if pending, nDead, err := s.CountDeliveries(ctx); err != nil || pending != 1 || nDead != 1 {
		t.Fatalf("CountDeliveries = %d pending, %d dead, %v; want 1 and 1", pending, nDead, err)
	}
	// Retry makes a dead letter pending and due now.
	if _, err := s.RetryDelivery(ctx, sub.ID, "wh_nope.x", at(2*time.Hour)); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("RetryDelivery(missing) = %v", err)
	}
	if _, err := s.RetryDelivery(ctx, off.ID, dead.ID, at(2*time.Hour)); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("RetryDelivery through another subscription = %v, want ErrNotFound", err)
	}
	r, err := s.RetryDelivery(ctx, sub.ID, dead.ID, at(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r.State != webhooks.StatePending || r.Attempts != 0 || !r.EndedAt.IsZero() || !r.QueuedAt.Equal(utc(at(2*time.Hour))) ||
		!r.NextAttemptAt.Equal(utc(at(2*time.Hour))) {
		t.Fatalf("retried = %+v", r)
	}
	if due, _ := s.DueDeliveries(ctx, at(2*time.Hour), 10); !slices.Contains(eventIDs(due), "job.jwh2.2") {
		t.Fatalf("retried delivery not due: %v", eventIDs(due))
	}
	// Pruning removes delivered rows that ended before the cut, nothing else.
	if err := s.PruneDelivered(ctx, at(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ds := deliveries(t, s, sub.ID, webhooks.StateDelivered); len(ds) != 1 {
		t.Fatalf("pruned a delivery that ended at the cut")
	}
	if err := s.PruneDelivered(ctx, at(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ds := deliveries(t, s, sub.ID, ""); len(ds) != 2 {
		t.Fatalf("after pruning: %d deliveries, want the 2 not delivered", len(ds))
	}
}
