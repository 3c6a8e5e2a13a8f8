package campaigns_test

import (
	"context"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/fwupdate"
)

// holdingDriver holds every update start until the test lets it go: a tick that starts a large
// wave, frozen in the middle.
type holdingDriver struct {
	*driver
	held chan struct{} // one value per start that is held
	hold chan struct{} // closed: the starts go on
}

func (d *holdingDriver) Start(ctx context.Context, ep string, req fwupdate.StartRequest) (*fwupdate.Job, error) {
	select {
	case d.held <- struct{}{}:
	default:
	}
	<-d.hold
	return d.driver.Start(ctx, ep, req)
}

// TestStartDoesNotWaitForTick starts a draft while a tick is in the middle of starting another
// campaign's updates: the start answers (running) before the tick ends, and the tick then
// steps both campaigns as before. A start used to wait for the whole tick (at 10,000 devices,
// seconds).
func TestStartDoesNotWaitForTick(t *testing.T) {
	r := newRig(t, 8)
	hd := &holdingDriver{driver: r.drv, held: make(chan struct{}, 1), hold: make(chan struct{})}
	imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
	m := campaigns.New(campaigns.Config{}, r.store, hd, r.fleet, imgs, nil, nil, nil, r.clock.now)
	ctx := context.Background()
	busy, err := m.Create(ctx, campaigns.Spec{Name: "busy", ImageID: "img", Endpoints: []string{"dev-0000", "dev-0001", "dev-0002", "dev-0003"},
		Plan: plan.Plan{Waves: waves(100)}, Start: true}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	draft, err := m.Create(ctx, campaigns.Spec{Name: "next", ImageID: "img", Endpoints: []string{"dev-0004", "dev-0005"},
		Plan: plan.Plan{Waves: waves(100)}}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ticked := make(chan struct{})
	go func() { m.Tick(ctx); close(ticked) }()
	<-hd.held // the tick is starting busy's updates
	started := make(chan error, 1)
	go func() {
		c, err := m.Start(ctx, draft.ID, "bob")
		if err == nil && c.State != campaigns.StateRunning {
			err = &unexpectedState{c.State}
		}
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Errorf("Start during a tick: %v", err)
		}
		close(hd.hold)
	case <-time.After(30 * time.Second):
		t.Error("Start waited for the tick in progress")
		close(hd.hold)
		if err := <-started; err != nil {
			t.Errorf("Start after the tick: %v", err)
		}
	}
	<-ticked
	// Both campaigns go on: busy's updates started, and the next tick starts next's.
	m.Tick(ctx)
	for _, id := range []string{busy.ID, draft.ID} {
		c, err := m.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != campaigns.StateRunning || c.InFlight == 0 {
			t.Errorf("campaign %s: %s with %d updates in flight, want running with some", c.Name, c.State, c.InFlight)
		}
	}
}

type unexpectedState struct{ s campaigns.State }

func (e *unexpectedState) Error() string { return "started campaign is " + string(e.s) }

// writeCounter is a store counting the campaign reads and saves made around a creation.
type writeCounter struct {
	campaigns.Store
	gets, saves, creates int
}

func (w *writeCounter) GetCampaign(ctx context.Context, id string) (*campaigns.Campaign, error) {
	w.gets++
	return w.Store.GetCampaign(ctx, id)
}

func (w *writeCounter) SaveCampaign(ctx context.Context, c *campaigns.Campaign, events ...campaigns.Event) error {
	w.saves++
	return w.Store.SaveCampaign(ctx, c, events...)
}

func (w *writeCounter) CreateCampaign(ctx context.Context, c *campaigns.Campaign, created campaigns.Event, members []campaigns.Member, after ...campaigns.Event) error {
	w.creates++
	return w.Store.CreateCampaign(ctx, c, created, members, after...)
}

// TestCreateStartedInOneWrite: a campaign created with Start is stored started in its creating
// transaction (one write, no read back), with the version and the history a Start after the
// creation gives: created (draft), then started; or scheduled when its schedule starts later.
func TestCreateStartedInOneWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		startAt time.Duration
		want    campaigns.State
	}{
		{"now", 0, campaigns.StateRunning},
		{"later", time.Hour, campaigns.StateScheduled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 4)
			wc := &writeCounter{Store: r.store}
			imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
			m := campaigns.New(campaigns.Config{}, wc, r.drv, r.fleet, imgs, nil, nil, nil, r.clock.now)
			p := plan.Plan{Waves: waves(100)}
			if tc.startAt > 0 {
				p.Schedule.StartAt = r.clock.now().Add(tc.startAt)
			}
			c, err := m.Create(context.Background(), campaigns.Spec{Name: "one", ImageID: "img", Query: `model = "m1"`, Plan: p, Start: true}, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if wc.creates != 1 || wc.saves != 0 || wc.gets != 0 {
				t.Fatalf("Create with Start: %d creations, %d saves, %d reads; want 1, 0, 0", wc.creates, wc.saves, wc.gets)
			}
			stored, err := r.store.GetCampaign(context.Background(), c.ID)
			if err != nil || stored.State != tc.want || c.State != tc.want || stored.Version != 2 || c.Version != 2 {
				t.Fatalf("answered %s v%d, stored %+v (%v); want %s v2", c.State, c.Version, stored, err, tc.want)
			}
			if tc.want == campaigns.StateRunning && (stored.StartedAt.IsZero() || len(stored.WaveStarted) != 1) {
				t.Fatalf("stored running without its start: %+v", stored)
			}
			hist, err := r.store.CampaignHistory(context.Background(), c.ID)
			if err != nil || len(hist) != 2 || hist[0].Action != "create" || hist[0].To != campaigns.StateDraft ||
				hist[1].Action != "start" || hist[1].From != campaigns.StateDraft || hist[1].To != tc.want || hist[1].Actor != "alice" {
				t.Fatalf("history = %+v, %v; want create (draft), start (%s) by alice", hist, err, tc.want)
			}
		})
	}
}
