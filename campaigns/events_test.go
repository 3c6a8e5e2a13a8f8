package campaigns_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/server/events"
)

type published struct {
	mu  sync.Mutex
	evs []events.Event
}

func (p *published) Publish(e events.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, e)
}

// Every stored campaign event reaches the event stream: the creation, operators' actions and the
// campaign's own decisions, in order, after they are stored.
func TestEventsPublished(t *testing.T) {
	r := newRig(t, 10)
	pub := &published{}
	r.m.WithEvents(pub)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(100)}})
	if _, err := r.m.Pause(context.Background(), c.ID, "bob", "lunch"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Resume(context.Background(), c.ID, "bob", campaigns.ResumeOptions{}); err != nil {
		t.Fatal(err)
	}
	r.run(c.ID, nil, time.Second, 10, ended)

	hist, err := r.m.History(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.evs) != len(hist) {
		t.Fatalf("published %d events, the history has %d: %+v", len(pub.evs), len(hist), pub.evs)
	}
	for i, e := range pub.evs {
		got, ok := e.Data.(events.CampaignChange)
		h := hist[i]
		want := events.CampaignChange{CampaignID: c.ID, Action: h.Action, From: string(h.From), To: string(h.To), Actor: h.Actor, Reason: h.Reason}
		if e.Type != events.TypeCampaign || e.Endpoint != "" || !ok || got != want || !e.Time.Equal(h.At) {
			t.Errorf("event %d: %s %q %+v at %s, want %+v at %s", i, e.Type, e.Endpoint, e.Data, e.Time, want, h.At)
		}
	}
	if last := pub.evs[len(pub.evs)-1].Data.(events.CampaignChange); last.To != string(campaigns.StateCompleted) {
		t.Fatalf("last event %+v, want the completion", last)
	}
	if first := pub.evs[0].Data.(events.CampaignChange); first.Action != "create" || first.Actor != "alice" {
		t.Fatalf("first event %+v, want alice's create", first)
	}
}
