package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
)

// testCampaignAddMembersAtomic: AddMembers stores the claims and the members together or not at
// all. A batch that fails (here: one device is a member already) leaves no claim behind, so that
// no device stays held by a campaign it is no member of (a campaign's claims are released with
// its members).
func testCampaignAddMembersAtomic(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a")
	_, _, fresh := newCampaign("cmp_1", "x", "a")
	if added, err := s.AddMembers(ctx, c, fresh); err == nil {
		t.Fatalf("AddMembers(a member again) = %v, want an error", endpointsOf(added))
	}
	if got, err := s.Claimed(ctx, []string{"x"}); err != nil || len(got) != 0 {
		t.Fatalf("Claimed(x) after the failed AddMembers = %v, %v; want nothing held", got, err)
	}
	if ms, _ := s.Members(ctx, "cmp_1", campaigns.MemberFilter{}); len(ms) != 1 || ms[0].Endpoint != "a" {
		t.Fatalf("members after the failed AddMembers = %v, want [a]", endpointsOf(ms))
	}
}

// testCampaignEndReleasesJoined: the devices that joined a campaign after its creation
// (AddMembers) are released with the others when it ends.
func testCampaignEndReleasesJoined(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	c := mustCreateCampaign(t, s, "cmp_1", "a")
	mustCreateCampaign(t, s, "cmp_2", "c")
	_, _, fresh := newCampaign("cmp_1", "b")
	if added, err := s.AddMembers(ctx, c, fresh); err != nil || len(added) != 1 {
		t.Fatalf("AddMembers(b) = %v, %v", endpointsOf(added), err)
	}
	c.State, c.Version, c.EndedAt = campaigns.StateAborted, 2, at(time.Hour)
	if err := s.SaveCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claimed(ctx, []string{"a", "b", "c"})
	if err != nil || !maps.Equal(got, map[string]string{"c": "cmp_2"}) {
		t.Fatalf("Claimed after cmp_1 ended = %v, %v; want only c, by cmp_2", got, err)
	}
}

// testCampaignConcurrentCreatesAtScale: two campaigns of 3,000 devices (stored as the manager
// makes them: set-based) that share one device, created at once, again and again: exactly one
// wins each time, the other is refused naming that device and leaves no member and no claim.
func testCampaignConcurrentCreatesAtScale(t *testing.T, s campaigns.Store) {
	ctx := context.Background()
	const n = 3000
	for round := range 3 {
		var eps [2][]string
		for side := range 2 {
			for i := range n {
				eps[side] = append(eps[side], fmt.Sprintf("r%d-s%d-%05d", round, side, i))
			}
		}
		shared := fmt.Sprintf("r%d-shared", round)
		eps[0][n/2], eps[1][n-1] = shared, shared
		ids := [2]string{fmt.Sprintf("cmp_r%d_a", round), fmt.Sprintf("cmp_r%d_b", round)}
		var wg sync.WaitGroup
		var errs [2]error
		for side := range 2 {
			wg.Go(func() {
				c, ev, ms := newCampaign(ids[side], eps[side]...)
				for i := range ms { // alike but for endpoint and rank, as Create makes them
					ms[i].Wave, ms[i].Rank, ms[i].CapLabel = 0, i, ""
				}
				errs[side] = s.CreateCampaign(ctx, c, ev, ms)
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: concurrent creations: %v, %v; want exactly one to succeed", round, errs[0], errs[1])
		}
		won, lost := 0, 1
		if errs[0] != nil {
			won, lost = 1, 0
		}
		var ce *campaigns.ConflictError
		if !errors.As(errs[lost], &ce) || !maps.Equal(ce.Claimed, map[string]string{shared: ids[won]}) {
			t.Fatalf("round %d: the refused creation: %v; want a ConflictError naming %s in %s", round, errs[lost], shared, ids[won])
		}
		if _, err := s.GetCampaign(ctx, ids[lost]); !errors.Is(err, campaigns.ErrNotFound) {
			t.Fatalf("round %d: the refused campaign was stored: %v", round, err)
		}
		if ms, err := s.Members(ctx, ids[lost], campaigns.MemberFilter{}); err != nil || len(ms) != 0 {
			t.Fatalf("round %d: the refused campaign has %d members, %v", round, len(ms), err)
		}
		claimed, err := s.Claimed(ctx, append(eps[0], eps[1]...))
		if err != nil || len(claimed) != n {
			t.Fatalf("round %d: %d devices claimed, %v; want the winner's %d", round, len(claimed), err, n)
		}
		for _, ep := range eps[won] {
			if claimed[ep] != ids[won] {
				t.Fatalf("round %d: %s claimed by %q, want %s", round, ep, claimed[ep], ids[won])
			}
		}
		if ms, err := s.Members(ctx, ids[won], campaigns.MemberFilter{}); err != nil || len(ms) != n {
			t.Fatalf("round %d: the winner has %d members, %v; want %d", round, len(ms), err, n)
		}
	}
}
