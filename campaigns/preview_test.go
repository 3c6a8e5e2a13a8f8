package campaigns_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// Preview counts what a selector picks with Create's own selection, and what Create would
// refuse or skip, and stores nothing.
func TestPreview(t *testing.T) {
	r := newRig(t, 10) // dev-0000..dev-0009, model m1 on 1.0.0
	r.fleet.add("other-1", "m2", "1.0.0", nil)
	r.fleet.add("dev-0100", "m1", imageVersion, nil) // already on the image's version
	held := r.create(campaigns.Spec{Endpoints: []string{"dev-0008", "dev-0009"}, Plan: plan.Plan{Waves: waves(100)}})
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		query     string
		endpoints []string
		image     string
		devices   int
		upToDate  int
		notFor    int
		busy      int
		models    map[string]int
		bad       string // the field of an *InvalidError
	}{
		{name: "a query, with the image", query: `endpoint ^= "dev-"`, image: "img", devices: 11, upToDate: 1, busy: 2, models: map[string]int{"m1": 11}},
		{name: "another model is counted and named", query: `firmware = "1.0.0"`, image: "img", devices: 11, notFor: 1, busy: 2,
			models: map[string]int{"m1": 10, "m2": 1}},
		{name: "without an image", endpoints: []string{"dev-0001", "other-1"}, devices: 2, models: map[string]int{"m1": 1, "m2": 1}},
		{name: "matches nothing", query: `model = "m9"`, devices: 0, models: map[string]int{}},
		{name: "bad query", query: `model ==`, bad: "selector.query"},
		{name: "both", query: `model = "m1"`, endpoints: []string{"dev-0001"}, bad: "selector"},
		{name: "neither", bad: "selector"},
		{name: "unknown endpoint", endpoints: []string{"nope"}, bad: "selector.endpoints"},
		{name: "unknown image", query: `model = "m1"`, image: "nope", bad: "image_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := r.m.Preview(ctx, tt.query, tt.endpoints, tt.image)
			if tt.bad != "" {
				var ie *campaigns.InvalidError
				if !errors.As(err, &ie) || ie.Problems[0].Field != tt.bad {
					t.Fatalf("err %v, want an invalid %s", err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Devices != tt.devices || p.UpToDate != tt.upToDate || p.NotForImage != tt.notFor || p.Busy != tt.busy {
				t.Errorf("devices %d up to date %d not for image %d busy %d; want %d %d %d %d",
					p.Devices, p.UpToDate, p.NotForImage, p.Busy, tt.devices, tt.upToDate, tt.notFor, tt.busy)
			}
			if len(p.Sample) != min(tt.devices, campaigns.PreviewSample) {
				t.Errorf("sample %v", p.Sample)
			}
			if len(p.Models) != len(tt.models) {
				t.Errorf("models %v, want %v", p.Models, tt.models)
			}
			for m, n := range tt.models {
				if p.Models[m] != n {
					t.Errorf("models %v, want %v", p.Models, tt.models)
				}
			}
		})
	}
	if list, _ := r.m.List(ctx); len(list) != 1 || list[0].ID != held.ID {
		t.Errorf("campaigns after the previews: %d, want only the one created", len(list))
	}
}
