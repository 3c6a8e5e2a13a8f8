package campaigns_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
)

// TestMetricsBounded: campaign ids grow without bound over a server's life, so no series keeps
// one after its campaign ends. Three campaigns run one after the other: the starts counter is one
// series counting all of them, and the per-campaign device gauges are there while a campaign
// runs and gone once it has ended.
func TestMetricsBounded(t *testing.T) {
	r := newRig(t, 30)
	reg := prometheus.NewRegistry()
	imgs := images{"img": {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}}}
	r.m = campaigns.New(campaigns.Config{}, r.store, r.drv, r.fleet, imgs, nil, nil, reg, r.clock.now)

	for n := range 3 {
		var eps []string
		for i := range 10 {
			eps = append(eps, fmt.Sprintf("dev-%04d", n*10+i))
		}
		c := r.create(campaigns.Spec{Endpoints: eps, Start: true, Plan: plan.Plan{Waves: waves(100)}})
		r.m.Tick(context.Background())
		if got := testutil.CollectAndCount(reg, "lwota_campaign_devices"); got != 6 {
			t.Fatalf("campaign %d running: %d lwota_campaign_devices series, want its 6 states", n+1, got)
		}
		if c = r.run(c.ID, nil, time.Second, 50, ended); c.State != campaigns.StateCompleted {
			t.Fatalf("campaign %d: %s (%s)", n+1, c.State, c.Reason)
		}
		r.m.Tick(context.Background()) // the tick after the end stops following it
		if got := testutil.CollectAndCount(reg, "lwota_campaign_devices"); got != 0 {
			t.Fatalf("campaign %d ended: %d lwota_campaign_devices series left", n+1, got)
		}
	}
	want := `
# HELP lwota_campaign_update_starts_total Device updates started by campaigns, all campaigns together.
# TYPE lwota_campaign_update_starts_total counter
lwota_campaign_update_starts_total 30
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lwota_campaign_update_starts_total"); err != nil {
		t.Fatal(err)
	}
}
