package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/selector"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/registration"
)

// CampaignSelectStore is a campaign store that selects a campaign's devices itself
// (campaigns.ExactSelector) from the registrations and labels it keeps.
type CampaignSelectStore interface {
	campaigns.Store
	campaigns.ExactSelector
	registration.Store
	registration.LabelStore
}

// RunCampaignSelect is the contract of a campaign start's storage at fleet size: SelectExact
// selects what the selector matches, and members made as Create makes them are stored as given.
func RunCampaignSelect(t *testing.T, open func(t *testing.T) CampaignSelectStore) {
	parallel(t, "SelectExactIsMatch", open, testSelectExact)
	parallel(t, "CreateLikeManager", open, testCreateLikeManager)
}

type selectDevice struct {
	ep, manufacturer, model, deviceType string
	labels                              map[string]string
}

// testSelectExact: for selectors whose narrowing is exact, SelectExact returns in endpoint
// order exactly the devices the selector matches (over the same stored devices), each with
// only the labels asked for, and apart those an image target does not fit.
func testSelectExact(t *testing.T, s CampaignSelectStore) {
	ctx := context.Background()
	var devices []selectDevice
	for i, ep := range []string{"fleet-001", "fleet-002", "fleet-010", "fleet-1", "fleet", "flee", "lab-1", "fleet-ü", "fleet-\U0010FFFF", "fleet-0%", "fleet-0_1"} {
		d := selectDevice{ep: ep, manufacturer: []string{"Acme", "Other"}[i%2], model: []string{"M1", "M2", ""}[i%3],
			deviceType: []string{"meter", ""}[i/6]}
		switch i % 4 {
		case 0:
			d.labels = map[string]string{"site": "north", "ring": "canary"}
		case 1:
			d.labels = map[string]string{"site": "south"}
		case 2:
			d.labels = map[string]string{"site": "north", "extra": "x"}
		}
		devices = append(devices, d)
		r := &registration.Registration{ID: "r-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 300, Binding: "U", RegisteredAt: at(0),
			UpdatedAt: at(0), LastSeen: at(0), Manufacturer: d.manufacturer, Model: d.model, DeviceType: d.deviceType}
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatalf("SaveRegistration(%s): %v", ep, err)
		}
		if d.labels != nil {
			if err := s.SetLabels(ctx, ep, d.labels); err != nil {
				t.Fatalf("SetLabels(%s): %v", ep, err)
			}
		}
	}
	// Labels of a device not registered are not a device.
	if err := s.SetLabels(ctx, "fleet-000-unregistered", map[string]string{"site": "north"}); err != nil {
		t.Fatal(err)
	}
	targets := []firmware.Selector{{}, {Model: "M1"}, {Manufacturer: "Acme", DeviceType: "meter"}, {Labels: map[string]string{"ring": "canary"}},
		{Model: "M2", Labels: map[string]string{"site": "north", "extra": "x"}}}
	exact := 0
	for _, q := range []string{`endpoint ^= "fleet"`, `endpoint ^= "fleet-0"`, `endpoint ^= "fleet-0%"`, `endpoint ^= "fleet-0_"`,
		`endpoint ^= "fleet-` + "\U0010FFFF" + `"`, `model = "M1"`, `manufacturer = "Acme" and labels.site = "north"`,
		`labels.ring = "canary" and endpoint ^= "fleet-00"`, `device_type = "meter" and model = "M2"`, `endpoint ^= "nothing"`,
		`labels.site = "north" and labels.extra = "x"`} {
		sel, err := selector.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		n := sel.Narrow()
		if !n.Exact {
			t.Fatalf("%s: narrowing not exact", q)
		}
		exact++
		for ti, target := range targets {
			keys := []string{"ring", "site"}[:ti%3]
			got, err := s.SelectExact(ctx, campaigns.ExactQuery{Filter: registration.Filter{EndpointPrefix: n.EndpointPrefix,
				Manufacturer: n.Manufacturer, Model: n.Model, DeviceType: n.DeviceType, Labels: n.Labels}, Target: target, Labels: keys})
			if err != nil {
				t.Fatalf("%s: SelectExact: %v", q, err)
			}
			var want, wantMisfits []string
			for _, d := range devices {
				if !sel.Match(selector.Device{Endpoint: d.ep, Manufacturer: d.manufacturer, Model: d.model, DeviceType: d.deviceType, Labels: d.labels}) {
					continue
				}
				want = append(want, d.ep)
				fits := (target.Manufacturer == "" || target.Manufacturer == d.manufacturer) && (target.Model == "" || target.Model == d.model) &&
					(target.DeviceType == "" || target.DeviceType == d.deviceType)
				for k, v := range target.Labels {
					fits = fits && d.labels[k] == v
				}
				if !fits {
					wantMisfits = append(wantMisfits, d.ep)
				}
			}
			slices.Sort(want)
			slices.Sort(wantMisfits)
			var eps, misfits []string
			for _, d := range got.Devices {
				eps = append(eps, d.Endpoint)
				var wantLabels map[string]string
				for _, dev := range devices {
					if dev.ep != d.Endpoint {
						continue
					}
					for _, k := range keys {
						if v, ok := dev.labels[k]; ok {
							if wantLabels == nil {
								wantLabels = map[string]string{}
							}
							wantLabels[k] = v
						}
					}
				}
				if !maps.Equal(d.Labels, wantLabels) || (d.Labels == nil) != (wantLabels == nil) {
					t.Fatalf("%s: labels %v of %s = %v, want %v", q, keys, d.Endpoint, d.Labels, wantLabels)
				}
			}
			for _, d := range got.Misfits {
				misfits = append(misfits, d.Endpoint)
				if i := slices.IndexFunc(devices, func(x selectDevice) bool { return x.ep == d.Endpoint }); i < 0 || devices[i].model != d.Model {
					t.Fatalf("%s: misfit %s with model %q", q, d.Endpoint, d.Model)
				}
			}
			if !slices.Equal(eps, want) || !slices.Equal(misfits, wantMisfits) {
				t.Fatalf("%s, target %+v: SelectExact = %q, misfits %q; the selector matches %q, misfits %q", q, target, eps, misfits, want, wantMisfits)
			}
		}
	}
	// A filter that is more than a narrowing is refused, not half applied.
	online := true
	if _, err := s.SelectExact(ctx, campaigns.ExactQuery{Filter: registration.Filter{Online: &online}}); err == nil {
		t.Fatalf("SelectExact with an Online filter: no error")
	}
	if exact == 0 {
		t.Fatal("no exact selector tried")
	}
}

// testCreateLikeManager: members as Create makes them (alike but for endpoint, wave and rank;
// each wave in rank order), more than one statement carries, are stored with every field as
// given and claimed; a campaign over one of them and many free devices is refused whole; and
// Claim for another campaign skips them.
func testCreateLikeManager(t *testing.T, s CampaignSelectStore) {
	ctx := context.Background()
	const n = 12345
	eps := make([]string, n)
	for i := range eps {
		eps[i] = fmt.Sprintf("dev-%05d", i)
	}
	eps[7], eps[8], eps[9] = `quote"d\back`, "ünï-cødé 📡", "it's"
	c, ev, _ := newCampaign("cmp_like", eps...)
	members := make([]campaigns.Member, n)
	for i, ep := range eps {
		wave, rank := 0, i
		if i >= 123 {
			wave, rank = 1, i-123
		}
		members[i] = campaigns.Member{CampaignID: c.ID, Endpoint: ep, Wave: wave, Rank: rank, CapLabel: "cell-1",
			State: campaigns.MemberPending, PendingSince: at(time.Second), UpdatedAt: at(2 * time.Second)}
	}
	if err := s.CreateCampaign(ctx, c, ev, members); err != nil {
		t.Fatalf("CreateCampaign(%d members): %v", n, err)
	}
	got, err := s.Members(ctx, c.ID, campaigns.MemberFilter{})
	if err != nil || len(got) != n {
		t.Fatalf("Members = %d, %v; want %d", len(got), err, n)
	}
	for i, m := range got { // ordered by wave and rank: the order given
		if !sameMember(m, members[i]) {
			t.Fatalf("member %d = %+v, want %+v", i, m, members[i])
		}
	}
	claimed, err := s.Claimed(ctx, eps)
	if err != nil || len(claimed) != n {
		t.Fatalf("Claimed = %d, %v; want %d", len(claimed), err, n)
	}
	other := []string{"free-0", eps[n-1]}
	for i := range 11000 {
		other = append(other, fmt.Sprintf("free-%05d", i+1))
	}
	c2, ev2, _ := newCampaign("cmp_other", other...)
	members2 := make([]campaigns.Member, len(other))
	for i, ep := range other {
		members2[i] = campaigns.Member{CampaignID: c2.ID, Endpoint: ep, Rank: i, State: campaigns.MemberPending, PendingSince: at(0), UpdatedAt: at(0)}
	}
	var ce *campaigns.ConflictError
	if err := s.CreateCampaign(ctx, c2, ev2, members2); !errors.As(err, &ce) || !maps.Equal(ce.Claimed, map[string]string{eps[n-1]: c.ID}) {
		t.Fatalf("CreateCampaign over a claimed device = %v, want a ConflictError naming %s", err, eps[n-1])
	}
	if ms, _ := s.Members(ctx, c2.ID, campaigns.MemberFilter{}); len(ms) != 0 {
		t.Fatalf("refused campaign stored %d members", len(ms))
	}
	if cl, _ := s.Claimed(ctx, other); len(cl) != 1 {
		t.Fatalf("refused campaign claimed %d devices", len(cl)-1)
	}
	held, err := s.Claim(ctx, "cmp_third", []string{eps[0], "free-0", eps[1], "free-1"})
	if err != nil || !slices.Equal(held, []string{"free-0", "free-1"}) {
		t.Fatalf("Claim = %q, %v; want the two free devices", held, err)
	}
}
