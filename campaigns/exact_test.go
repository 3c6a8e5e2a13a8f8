package campaigns_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// countingFleet is storeFleet counting its device lists.
type countingFleet struct {
	storeFleet
	lists atomic.Int64
}

func (f *countingFleet) ListDevices(ctx context.Context, flt registration.Filter) ([]*registration.Registration, error) {
	f.lists.Add(1)
	return f.storeFleet.ListDevices(ctx, flt)
}

// TestExactSelectionAtScale: with the store selecting (WithExactSelector, as lwota serve wires
// it), a campaign over 3,000 of 4,000 stored devices whose selector translates exactly never
// lists the fleet; it selects and splits into waves exactly what the fleet and the selector
// select (the same waves, with a spread label and a per-label cap); it refuses at once, with the
// same words, a selection of no device (422), devices the image is not for (422), and devices
// held by another campaign (409, storing nothing); and a selector that does not translate
// (online) still lists the fleet.
func TestExactSelectionAtScale(t *testing.T) {
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	storeDevices(t, store, 4000, func(i int, now time.Time) (*registration.Registration, map[string]string) {
		ep := fmt.Sprintf("dev-%04d", i)
		model := "m1"
		if i%1000 == 999 {
			model = "m2" // one in each thousand is another model
		}
		return &registration.Registration{ID: "r-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 86400, Binding: "U", Model: model,
				FirmwareVersion: "1.0.0", RegisteredAt: now, UpdatedAt: now, LastSeen: now},
			map[string]string{"cell": fmt.Sprint(i % 7), "ring": []string{"a", "b"}[i%2]}
	})
	clk := &clock{t: time.Now()}
	imgs := images{
		"img":  {ID: "img", Version: imageVersion, Target: firmware.Selector{Model: "m1"}},
		"any":  {ID: "any", Version: imageVersion},
		"ring": {ID: "ring", Version: imageVersion, Target: firmware.Selector{Labels: map[string]string{"ring": "a"}}},
	}
	newManager := func(exact bool) (*campaigns.Manager, *countingFleet) {
		fleet := &countingFleet{storeFleet: storeFleet{store}}
		m := campaigns.New(campaigns.Config{}, store, &driver{store: store, now: clk.now, count: map[string]int{}}, fleet, imgs, nil, nil, nil, clk.now)
		if exact {
			m.WithExactSelector(store)
		}
		return m, fleet
	}
	exact, fleet := newManager(true)
	listing, _ := newManager(false)

	p := plan.Plan{Waves: waves(1, 10, 100), SpreadBy: "cell", Pacing: plan.Pacing{PerLabelCap: plan.LabelCap{Key: "ring", Max: 5}}}
	for _, q := range []string{`endpoint ^= "dev-0"`, `endpoint ^= "dev-" and labels.ring = "a"`, `labels.cell = "3"`} {
		spec := campaigns.Spec{Name: "dry", ImageID: "any", Query: q, Plan: p}
		got, err := exact.DryRun(ctx, spec)
		if err != nil {
			t.Fatalf("%s: exact DryRun: %v", q, err)
		}
		want, err := listing.DryRun(ctx, spec)
		if err != nil {
			t.Fatalf("%s: listing DryRun: %v", q, err)
		}
		// The waves hash with the campaign's id, new each time: compare the sets per wave size
		// and the devices as a whole.
		if len(got.Devices) != len(want.Devices) || len(got.Waves) != len(want.Waves) {
			t.Fatalf("%s: exact selection %d devices in %d waves, listing %d in %d", q, len(got.Devices), len(got.Waves), len(want.Devices), len(want.Waves))
		}
		for i := range got.Waves {
			if len(got.Waves[i]) != len(want.Waves[i]) {
				t.Fatalf("%s: wave %d of %d devices, listing %d", q, i, len(got.Waves[i]), len(want.Waves[i]))
			}
		}
		for i, d := range got.Devices {
			if d.Endpoint != want.Devices[i].Endpoint || d.Labels["cell"] != want.Devices[i].Labels["cell"] || d.Labels["ring"] != want.Devices[i].Labels["ring"] {
				t.Fatalf("%s: device %d = %s %v, listing %s %v", q, i, d.Endpoint, d.Labels, want.Devices[i].Endpoint, want.Devices[i].Labels)
			}
		}
	}
	if n := fleet.lists.Load(); n != 0 {
		t.Fatalf("exact selections listed the fleet %d times", n)
	}

	for _, tc := range []struct {
		name, query, image string
		wantErr            string
	}{
		{"no device", `endpoint ^= "nobody-"`, "img", "selects no device"},
		{"not for the image", `endpoint ^= "dev-"`, "img", `the image is for model "m1" (manufacturer "", type ""); 4 selected devices are not: [dev-0999 (model "m2") dev-1999 (model "m2") dev-2999 (model "m2") dev-3999 (model "m2")]`},
		{"not for the label", `endpoint ^= "dev-00"`, "ring", `50 selected devices are not: [dev-0001 (model "m1") dev-0003 (model "m1")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []*campaigns.Manager{exact, listing} {
				_, err := m.Create(ctx, campaigns.Spec{Name: tc.name, ImageID: tc.image, Query: tc.query, Plan: p, Start: true}, "test")
				var ie *campaigns.InvalidError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Create = %v, want an InvalidError saying %s", err, tc.wantErr)
				}
			}
		})
	}

	c, err := exact.Create(ctx, campaigns.Spec{Name: "first", ImageID: "any", Query: `endpoint ^= "dev-1"`, Plan: p, Start: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := exact.MemberSummary(ctx, c)
	if got := campaigns.ProgressFrom(c, sum, clk.now()); err != nil || got.Total != 1000 || c.State != campaigns.StateRunning {
		t.Fatalf("first campaign %s: %d devices (%v), want 1000 running", c.State, got.Total, err)
	}
	members, err := exact.Members(ctx, c.ID, campaigns.MemberFilter{})
	if err != nil || len(members) != 1000 {
		t.Fatalf("Members = %d, %v", len(members), err)
	}
	for _, mem := range members {
		n := 0
		fmt.Sscanf(mem.Endpoint, "dev-%d", &n)
		if want := []string{"a", "b"}[n%2]; mem.CapLabel != want || mem.State != campaigns.MemberPending {
			t.Fatalf("member %+v: want cap label %q, pending", mem, want)
		}
	}
	before, err := exact.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = exact.Create(ctx, campaigns.Spec{Name: "second", ImageID: "any", Query: `labels.ring = "b"`, Plan: p, Start: true}, "test")
	var ce *campaigns.ConflictError
	if !errors.As(err, &ce) || len(ce.Claimed) != 500 || ce.Claimed["dev-1001"] != c.ID {
		t.Fatalf("Create over claimed devices = %v, want a ConflictError naming the first campaign's 500 ring b devices", err)
	}
	if after, err := exact.List(ctx); err != nil || len(after) != len(before) {
		t.Fatalf("the refused campaign was stored: %d campaigns, then %d (%v)", len(before), len(after), err)
	}
	if n := fleet.lists.Load(); n != 0 {
		t.Fatalf("exact selections listed the fleet %d times", n)
	}
	// online does not translate: the fleet lists, the selector decides.
	if _, err := exact.DryRun(ctx, campaigns.Spec{Name: "online", ImageID: "any", Query: `online and endpoint ^= "dev-2"`, Plan: p}); err != nil {
		t.Fatal(err)
	}
	if n := fleet.lists.Load(); n != 1 {
		t.Fatalf("an online selector listed the fleet %d times, want 1", n)
	}
	if !reflect.DeepEqual(c.Plan, p) {
		t.Fatalf("plan stored as %+v", c.Plan)
	}
}
