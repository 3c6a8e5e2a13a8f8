package api

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/lwota/lwota/campaigns"
)

// countingCampaigns is the manager, counting the reads of every member of a campaign and the
// summaries counted in the store.
type countingCampaigns struct {
	*campaigns.Manager
	fullReads atomic.Int64
	summaries atomic.Int64
}

func (c *countingCampaigns) MemberSummary(ctx context.Context, cmp *campaigns.Campaign) (campaigns.MemberSummary, error) {
	c.summaries.Add(1)
	return c.Manager.MemberSummary(ctx, cmp)
}

func (c *countingCampaigns) Members(ctx context.Context, id string, f campaigns.MemberFilter) ([]campaigns.Member, error) {
	if f.Limit == 0 {
		c.fullReads.Add(1)
	}
	return c.Manager.Members(ctx, id, f)
}

// TestCampaignAnswersFromCounts: a campaign's answers (read, paused, listed) carry its progress
// from counts the store computes, the create's from the members it stored, never from reading
// every member:
// a start over 10,000 devices answered after reading the 10,000 rows back. The devices stay
// readable a page at a time.
func TestCampaignAnswersFromCounts(t *testing.T) {
	env := newCampaignEnv(t)
	counting := &countingCampaigns{Manager: env.mgr}
	env.api.WithCampaigns(counting)

	c := env.create(t, `{"name": "all", "image_id": "img-1", "selector": {"query": "model = \"X\""}, `+twoWaves+`, "start": true}`)
	if c.State != "running" || c.Progress.Total != 10 || c.Progress.Counts["pending"] != 10 || len(c.Progress.Waves) != 2 ||
		c.Progress.Waves[0].Size+c.Progress.Waves[1].Size != 10 {
		t.Fatalf("started campaign %+v", c)
	}
	// The create's answer counts the members it stored; it does not count them again in the
	// store (two GROUP BYs over 10,000 rows, beside the first tick starting their updates).
	if n := counting.summaries.Load(); n != 0 {
		t.Fatalf("the create's answer counted the members in the store %d times, want 0", n)
	}
	env.tick(t) // starts wave 1's updates
	got := env.campaign(t, env.do(t, http.MethodGet, "/api/v1/campaigns/"+c.ID, ""), http.StatusOK)
	if got.Progress.Counts["in_progress"] != got.Progress.Waves[0].Size || got.Progress.Counts["in_progress"] == 0 {
		t.Fatalf("campaign after a tick %+v", got.Progress)
	}
	env.jobs.finish(t, env.jobs.started()[0], "failed", "integrity check failed")
	env.tick(t)
	paused := env.campaign(t, env.do(t, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/pause", `{}`, jsonCT...), http.StatusOK)
	if paused.State != "paused" || paused.Progress.Counts["failed"] != 1 || len(paused.FailureReasons) != 1 ||
		paused.FailureReasons[0].Reason != "integrity check failed" {
		t.Fatalf("paused campaign %+v", paused)
	}
	if r := env.do(t, http.MethodGet, "/api/v1/campaigns", ""); r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var page campaignDeviceList
	decodeJSON(t, env.do(t, http.MethodGet, "/api/v1/campaigns/"+c.ID+"/devices?limit=4", "").body, &page)
	if len(page.Devices) != 4 || page.Next == "" {
		t.Fatalf("devices page %+v", page)
	}
	if n := counting.fullReads.Load(); n != 0 {
		t.Fatalf("the answers read every member of the campaign %d times", n)
	}
}
