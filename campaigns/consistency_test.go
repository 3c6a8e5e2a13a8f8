package campaigns_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/storage/sqlstore"
)

// readerStore is the rig's store as the manager writes it, looking after every write at what a
// reader of the store (the API, a restarted lwota) would find then.
type readerStore struct {
	*sqlstore.Store
	mu       sync.Mutex
	problems []string
}

func (s *readerStore) SaveCampaign(ctx context.Context, c *campaigns.Campaign, events ...campaigns.Event) error {
	err := s.Store.SaveCampaign(ctx, c, events...)
	if err == nil {
		s.look(ctx, c.ID, "SaveCampaign")
	}
	return err
}

func (s *readerStore) SaveTick(ctx context.Context, c *campaigns.Campaign, members []campaigns.Member, events ...campaigns.Event) error {
	err := s.Store.SaveTick(ctx, c, members, events...)
	if err == nil {
		s.look(ctx, c.ID, "SaveTick")
	}
	return err
}

func (s *readerStore) SaveMembers(ctx context.Context, members []campaigns.Member) error {
	err := s.Store.SaveMembers(ctx, members)
	if err == nil && len(members) > 0 {
		s.look(ctx, members[0].CampaignID, "SaveMembers")
	}
	return err
}

// look records a stored campaign that has ended while stored members are still pending or
// in progress: what the API showed while the stored state was half written.
func (s *readerStore) look(ctx context.Context, id, after string) {
	c, err := s.Store.GetCampaign(ctx, id)
	if err != nil || c.State != campaigns.StateCompleted {
		return
	}
	ms, err := s.Store.Members(ctx, id, campaigns.MemberFilter{})
	if err != nil {
		return
	}
	counts := campaigns.Counts(ms, len(c.Plan.Waves))
	for w, n := range counts {
		if !n.Settled() {
			s.mu.Lock()
			s.problems = append(s.problems, fmt.Sprintf("after %s the stored campaign is %s while wave %d has %d pending and %d in progress",
				after, c.State, w+1, n.Pending, n.InProgress))
			s.mu.Unlock()
		}
	}
}

// A campaign is stored as completed together with the member states it was decided from: the
// CI run that read "completed" with a device still in progress (its member was stored half a
// second later) cannot happen.
func TestCompletedWithItsMembers(t *testing.T) {
	r := newRig(t, 40)
	obs := &readerStore{Store: r.store}
	imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
	r.m = campaigns.New(campaigns.Config{}, obs, r.drv, r.fleet, imgs, nil, nil, nil, r.clock.now)
	c := r.create(campaigns.Spec{Start: true, Plan: plan.Plan{Waves: waves(25, 100)}})
	c = r.run(c.ID, nil, time.Second, 50, ended)
	if c.State != campaigns.StateCompleted {
		t.Fatalf("campaign %s (%s), want completed", c.State, c.Reason)
	}
	if n := len(r.members(c.ID, campaigns.MemberSucceeded)); n != 40 {
		t.Fatalf("%d members succeeded, want 40", n)
	}
	for _, p := range obs.problems {
		t.Error(p)
	}
}
