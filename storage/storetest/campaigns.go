package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// RunCampaigns is the contract of campaigns.Store.
func RunCampaigns(t *testing.T, open func(t *testing.T) campaigns.Store) {
	parallel(t, "RoundTrip", open, testCampaignRoundTrip)
	parallel(t, "OneActiveCampaignPerDevice", open, testCampaignConflict)
	parallel(t, "CompareAndSet", open, testCampaignCAS)
	parallel(t, "SaveWithMembers", open, testCampaignSaveWithMembers)
	parallel(t, "EndReleasesDevices", open, testCampaignRelease)
	parallel(t, "AddMembersAndClaim", open, testCampaignAddMembers)
	parallel(t, "MembersFilterAndSave", open, testCampaignMembers)
	parallel(t, "Lease", open, testLease)
	parallel(t, "Followed", open, testCampaignFollowed)
	parallel(t, "ManyMembers", open, testCampaignManyMembers)
	parallel(t, "MemberSummary", open, testCampaignMemberSummary)
	parallel(t, "AddMembersAtomic", open, testCampaignAddMembersAtomic)
	parallel(t, "EndReleasesJoined", open, testCampaignEndReleasesJoined)
	parallel(t, "ConcurrentCreatesAtScale", open, testCampaignConcurrentCreatesAtScale)
}

func newCampaign(id string, eps ...string) (*campaigns.Campaign, campaigns.Event, []campaigns.Member) {
	c := &campaigns.Campaign{
		ID: id, Name: "rollout " + id, ImageID: "img-1", ImageVersion: "1.4.2", Endpoints: eps, Method: "pull",
		Plan: plan.Plan{Waves: []plan.Wave{{Percent: 50, Soak: time.Minute}, {Percent: 100}},
			WaveThreshold: plan.FailureThreshold{Percent: 10, MinDevices: 5, Action: plan.ActionPause}},
		State: campaigns.StateDraft, Gates: make([]plan.GateState, 2), Version: 1, CreatedBy: "alice",
		CreatedAt: at(0), UpdatedAt: at(0),
	}
	var members []campaigns.Member
	for i, ep := range eps {
		members = append(members, campaigns.Member{CampaignID: id, Endpoint: ep, Wave: i % 2, Rank: i / 2,
			CapLabel: "cell-" + ep, State: campaigns.MemberPending, PendingSince: at(0), UpdatedAt: at(0)})
	}
	ev := campaigns.Event{CampaignID: id, At: at(0), To: campaigns.StateDraft, Actor: "alice", Action: "create"}
	return c, ev, members
}

func mustCreateCampaign(t *testing.T, s campaigns.Store, id string, eps ...string) *campaigns.Campaign {
	t.Helper()
	c, ev, members := newCampaign(id, eps...)
	if err := s.CreateCampaign(context.Background(), c, ev, members); err != nil {
		t.Fatalf("CreateCampaign(%s): %v", id, err)
	}
	return c
}

func endpointsOf(ms []campaigns.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Endpoint
	}
	return out
}

func testCampaignRoundTrip(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	if _, err := s.GetCampaign(ctx, "cmp_x"); !errors.Is(err, campaigns.ErrNotFound) {
		t.Fatalf("GetCampaign(missing) = %v, want ErrNotFound", err)
	}
	want := mustCreateCampaign(t, s, "cmp_1", "d", "a", "c", "b")
	got, err := s.GetCampaign(ctx, "cmp_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.State != want.State || got.Version != 1 || !slices.Equal(got.Endpoints, want.Endpoints) ||
		len(got.Plan.Waves) != 2 || got.Plan.Waves[0].Soak != time.Minute || got.Plan.WaveThreshold != want.Plan.WaveThreshold ||
		!got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("GetCampaign = %+v, want %+v", got, want)
	}
	ms, err := s.Members(ctx, "cmp_1", campaigns.MemberFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// By wave, then start order: d(0,0) c(0,1) a(1,0) b(1,1).
	if got := endpointsOf(ms); !slices.Equal(got, []string{"d", "c", "a", "b"}) {
		t.Fatalf("Members = %v, want [d c a b] (wave, then rank)", got)
	}
	if m := ms[0]; m.CapLabel != "cell-d" || m.State != campaigns.MemberPending || !utc(m.PendingSince).Equal(utc(at(0))) {
		t.Fatalf("member = %+v", m)
	}
	hist, err := s.CampaignHistory(ctx, "cmp_1")
	if err != nil || len(hist) != 1 || hist[0].Seq != 1 || hist[0].Action != "create" || hist[0].Actor != "alice" {
		t.Fatalf("History = %+v, %v; want the creation event as #1", hist, err)
	}
	mustCreateCampaign(t, s, "cmp_2", "e")
	list, err := s.ListCampaigns(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListCampaigns = %d, %v", len(list), err)
	}
	if list, _ := s.ListCampaigns(ctx, campaigns.StateRunning); len(list) != 0 {
		t.Fatalf("ListCampaigns(running) = %d campaigns, want 0", len(list))
	}
}

// testCampaignConflict: a device in a campaign that has not ended cannot join another one,
// and the refused campaign leaves nothing behind.
func testCampaignConflict(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	mustCreateCampaign(t, s, "cmp_1", "a", "b")
	c, ev, ms := newCampaign("cmp_2", "b", "c")
	err := s.CreateCampaign(ctx, c, ev, ms)
	var ce *campaigns.ConflictError
	if !errors.As(err, &ce) || ce.Claimed["b"] != "cmp_1" || len(ce.Claimed) != 1 {
		t.Fatalf("CreateCampaign(overlapping) = %v, want a ConflictError naming b in cmp_1", err)
	}
	if _, err := s.GetCampaign(ctx, "cmp_2"); !errors.Is(err, campaigns.ErrNotFound) {
		t.Fatalf("the refused campaign was stored: %v", err)
	}
	if got, _ := s.Claimed(ctx, []string{"a", "b", "c"}); len(got) != 2 || got["c"] != "" {
		t.Fatalf("Claimed = %v, want a and b by cmp_1 only", got)
	}
	// Two creations racing for one device: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, ev, ms := newCampaign([]string{"cmp_r1", "cmp_r2"}[i], "z")
			errs[i] = s.CreateCampaign(ctx, c, ev, ms)
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("racing creations: %v, %v; want exactly one to succeed", errs[0], errs[1])
	}
}

func testCampaignCAS(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a")
	c.State, c.Version = campaigns.StateRunning, 2
	ev := campaigns.Event{At: at(time.Second), From: campaigns.StateDraft, To: campaigns.StateRunning, Actor: "bob", Action: "start", Reason: "go"}
	if err := s.SaveCampaign(ctx, c, ev); err != nil {
		t.Fatal(err)
	}
	stale := c.Clone()
	stale.Version = 2 // saved from version 1 again
	if err := s.SaveCampaign(ctx, stale); !errors.Is(err, campaigns.ErrStale) {
		t.Fatalf("SaveCampaign(stale) = %v, want ErrStale", err)
	}
	ghost := c.Clone()
	ghost.ID = "cmp_ghost"
	if err := s.SaveCampaign(ctx, ghost); !errors.Is(err, campaigns.ErrNotFound) {
		t.Fatalf("SaveCampaign(unknown) = %v, want ErrNotFound", err)
	}
	c.Version, c.Reason = 3, "paused"
	two := []campaigns.Event{{At: at(2 * time.Second), From: campaigns.StateRunning, To: campaigns.StateRunning, Actor: "lwota", Action: "wave"},
		{At: at(2 * time.Second), From: campaigns.StateRunning, To: campaigns.StatePaused, Actor: "lwota", Action: "threshold"}}
	if err := s.SaveCampaign(ctx, c, two...); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetCampaign(ctx, "cmp_1")
	if got.Version != 3 || got.Reason != "paused" {
		t.Fatalf("after saves: %+v", got)
	}
	hist, _ := s.CampaignHistory(ctx, "cmp_1")
	var actions []string
	for i, e := range hist {
		if e.Seq != i+1 {
			t.Fatalf("event %d has Seq %d", i, e.Seq)
		}
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"create", "start", "wave", "threshold"}) {
		t.Fatalf("history %v: a stale save must add no event", actions)
	}
}

// testCampaignSaveWithMembers: a campaign's decision and the member states it was taken from
// are stored together, and a stale save stores neither.
func testCampaignSaveWithMembers(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a", "b")
	ms, err := s.Members(ctx, "cmp_1", campaigns.MemberFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		ms[i].State, ms[i].JobID, ms[i].EndedAt, ms[i].UpdatedAt = campaigns.MemberSucceeded, "job-"+ms[i].Endpoint, at(time.Minute), at(time.Minute)
	}
	stale := c.Clone()
	stale.Version, stale.State = 2, campaigns.StateCompleted
	c.Version, c.State = 2, campaigns.StateRunning
	if err := s.SaveCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveTick(ctx, stale, ms[:1]); !errors.Is(err, campaigns.ErrStale) {
		t.Fatalf("SaveTick(stale) = %v, want ErrStale", err)
	}
	if got, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{State: campaigns.MemberSucceeded}); len(got) != 0 {
		t.Fatalf("a stale save stored members %v", endpointsOf(got))
	}
	c.Version, c.State, c.EndedAt = 3, campaigns.StateCompleted, at(time.Minute)
	ev := campaigns.Event{At: at(time.Minute), From: campaigns.StateRunning, To: campaigns.StateCompleted, Actor: "lwota", Action: "complete"}
	if err := s.SaveTick(ctx, c, ms, ev); err != nil {
		t.Fatal(err)
	}
	got, err := s.Members(ctx, "cmp_1", campaigns.MemberFilter{State: campaigns.MemberSucceeded})
	if err != nil || !slices.Equal(endpointsOf(got), []string{"a", "b"}) || got[0].JobID != "job-a" {
		t.Fatalf("members saved with the campaign: %+v, %v", got, err)
	}
	if saved, _ := s.GetCampaign(ctx, "cmp_1"); saved.State != campaigns.StateCompleted || saved.Version != 3 {
		t.Fatalf("campaign after the save: %s v%d", saved.State, saved.Version)
	}
}

func testCampaignRelease(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a", "b")
	c.State, c.Version, c.EndedAt = campaigns.StateCompleted, 2, at(time.Hour)
	if err := s.SaveCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Claimed(ctx, []string{"a", "b"}); len(got) != 0 {
		t.Fatalf("an ended campaign still holds %v", got)
	}
	mustCreateCampaign(t, s, "cmp_2", "b")
	// Claim takes back only what is free: a, not b (now in cmp_2).
	held, err := s.Claim(ctx, "cmp_1", []string{"a", "b"})
	if err != nil || !slices.Equal(held, []string{"a"}) {
		t.Fatalf("Claim = %v, %v; want [a]", held, err)
	}
}

func testCampaignAddMembers(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a")
	mustCreateCampaign(t, s, "cmp_2", "b")
	_, _, fresh := newCampaign("cmp_1", "b", "c", "d")
	added, err := s.AddMembers(ctx, c, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if got := endpointsOf(added); !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("AddMembers = %v, want [c d] (b is in cmp_2)", got)
	}
	ms, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{})
	if len(ms) != 3 {
		t.Fatalf("members after AddMembers: %v", endpointsOf(ms))
	}
}

func testCampaignMembers(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	eps := []string{"e1", "e2", "e3", "e4", "e5"}
	mustCreateCampaign(t, s, "cmp_1", eps...)
	ms, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{})
	for i := range ms {
		if ms[i].Endpoint == "e2" || ms[i].Endpoint == "e4" {
			ms[i].State, ms[i].JobID, ms[i].JobState, ms[i].Reason = campaigns.MemberFailed, "job-"+ms[i].Endpoint, "failed", "integrity"
			ms[i].Attempts, ms[i].StartedAt, ms[i].EndedAt = 2, at(time.Second), at(time.Minute)
		}
	}
	if err := s.SaveMembers(ctx, ms); err != nil {
		t.Fatal(err)
	}
	failed, err := s.Members(ctx, "cmp_1", campaigns.MemberFilter{State: campaigns.MemberFailed})
	if err != nil || !slices.Equal(endpointsOf(failed), []string{"e2", "e4"}) {
		t.Fatalf("Members(failed) = %v, %v", endpointsOf(failed), err)
	}
	if m := failed[0]; m.JobID != "job-e2" || m.Attempts != 2 || m.Reason != "integrity" || !utc(m.EndedAt).Equal(utc(at(time.Minute))) {
		t.Fatalf("saved member = %+v", m)
	}
	page1, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{Limit: 2})
	page2, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{Limit: 2, After: page1[1].Endpoint})
	if !slices.Equal(endpointsOf(page1), []string{"e1", "e2"}) || !slices.Equal(endpointsOf(page2), []string{"e3", "e4"}) {
		t.Fatalf("pages %v %v, want [e1 e2] [e3 e4]", endpointsOf(page1), endpointsOf(page2))
	}
}

func testLease(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	ttl := 10 * time.Second
	for _, c := range []struct {
		holder string
		now    time.Duration
		want   bool
	}{
		{"node-a", 0, true},                 // free
		{"node-b", 5 * time.Second, false},  // held by a
		{"node-a", 8 * time.Second, true},   // a renews until 18 s
		{"node-b", 15 * time.Second, false}, // still a's
		{"node-b", 19 * time.Second, true},  // expired: b takes it
		{"node-a", 20 * time.Second, false},
	} {
		got, err := s.Lease(ctx, "campaigns", c.holder, at(c.now), ttl)
		if err != nil || got != c.want {
			t.Fatalf("Lease(%s at %v) = %v, %v; want %v", c.holder, c.now, got, err, c.want)
		}
	}
	if got, _ := s.Lease(ctx, "other", "node-a", at(20*time.Second), ttl); !got {
		t.Fatal("leases of different names are independent")
	}
}

// testCampaignFollowed: the leader ticks active campaigns and ended ones with updates still in
// flight or a retry to handle, as they were at their last save.
func testCampaignFollowed(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	ids := func() []string {
		t.Helper()
		cs, err := s.FollowedCampaigns(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	a := mustCreateCampaign(t, s, "cmp_a", "a")
	b := mustCreateCampaign(t, s, "cmp_b", "b")
	if got := ids(); len(got) != 0 {
		t.Fatalf("drafts followed: %v", got)
	}
	save := func(c *campaigns.Campaign, st campaigns.State, inFlight int) {
		t.Helper()
		c.State, c.InFlight = st, inFlight
		c.Version++
		if err := s.SaveCampaign(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	save(a, campaigns.StateRunning, 0)
	save(b, campaigns.StatePaused, 3)
	if got := ids(); !slices.Equal(got, []string{"cmp_a", "cmp_b"}) {
		t.Fatalf("followed %v, want [cmp_a cmp_b]", got)
	}
	save(a, campaigns.StateCompleted, 0)
	save(b, campaigns.StateAborted, 2) // soft abort: its updates finish and are counted
	if got := ids(); !slices.Equal(got, []string{"cmp_b"}) {
		t.Fatalf("followed %v, want [cmp_b]", got)
	}
	save(b, campaigns.StateAborted, 0)
	if got := ids(); len(got) != 0 {
		t.Fatalf("followed %v, want none", got)
	}
}
