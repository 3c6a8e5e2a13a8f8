package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/fwupdate"
)

// The history of a campaign: members per state over time from the stored members, and who did
// what, from the campaign's own events.
func TestCampaignHistory(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "eu", "image_id": "img-1", "selector": {"query": "labels.region = \"eu\""}, `+twoWaves+`, "start": true}`)
	path := "/api/v1/campaigns/" + c.ID + "/history"
	for range 5 {
		env.tick(t)
	}
	first := env.jobs.started()
	env.jobs.finish(t, first[0], fwupdate.StateSucceeded, "")
	env.jobs.finish(t, first[1], fwupdate.StateFailed, "integrity check failure")
	for range 5 {
		env.tick(t)
	}
	if r := env.do(t, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/pause", `{"reason": "checking the failure"}`, jsonCT...); r.status != 200 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}

	type history struct {
		StepSeconds int `json:"step_seconds"`
		Samples     []struct {
			Counts map[string]int `json:"counts"`
		} `json:"samples"`
		Events []struct {
			Actor, Action, To, Reason string
		} `json:"events"`
	}
	for _, tt := range []struct {
		name    string
		query   string
		status  int
		code    string
		samples int
	}{
		{name: "default: one sample a second", status: 200, samples: 11},
		{name: "bounded by points", query: "?points=3", status: 200, samples: 3},
		{name: "points too few", query: "?points=1", status: 400, code: codeInvalidQuery},
		{name: "points too many", query: "?points=501", status: 400, code: codeInvalidQuery},
		{name: "points not a number", query: "?points=x", status: 400, code: codeInvalidQuery},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.do(t, http.MethodGet, path+tt.query, "")
			if tt.code != "" {
				wantError(t, r, tt.status, tt.code)
				return
			}
			var h history
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			decodeJSON(t, r.body, &h)
			if len(h.Samples) != tt.samples || h.StepSeconds < 1 {
				t.Fatalf("%d samples %d s apart, want %d", len(h.Samples), h.StepSeconds, tt.samples)
			}
			if got := h.Samples[0].Counts; got["pending"] != 5 {
				t.Errorf("first sample %v, want the 5 devices pending", got)
			}
			last := h.Samples[len(h.Samples)-1].Counts
			if last["succeeded"] != 1 || last["failed"] != 1 || last["pending"]+last["in_progress"] != 3 {
				t.Errorf("last sample %v, want 1 succeeded, 1 failed, 3 pending or in progress", last)
			}
			var actions []string
			for _, e := range h.Events {
				actions = append(actions, e.Action+":"+e.Actor)
			}
			got := strings.Join(actions, " ")
			if !strings.HasPrefix(got, "create:admin start:admin") || !strings.HasSuffix(got, "pause:admin") {
				t.Errorf("events %s", got)
			}
			if e := h.Events[len(h.Events)-1]; e.Reason != "checking the failure" || e.To != "paused" {
				t.Errorf("the pause event: %+v", e)
			}
		})
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/campaigns/cmp_nope/history", ""), 404, codeNotFound)
}

// The create form's live count: the same selection as a create, nothing stored; bad input is
// a 400 that names the field.
func TestCampaignPreview(t *testing.T) {
	env := newCampaignEnv(t)
	type preview struct {
		Devices int      `json:"devices"`
		Sample  []string `json:"sample"`
		Models  []struct {
			Model   string `json:"model"`
			Devices int    `json:"devices"`
		} `json:"models"`
		ImageVersion string `json:"image_version"`
		UpToDate     int    `json:"already_up_to_date"`
		NotForImage  int    `json:"not_for_image"`
		Busy         int    `json:"in_other_campaigns"`
	}
	held := env.create(t, `{"name": "held", "image_id": "img-1", "selector": {"endpoints": ["dev-00"]}, "waves": [{"percent": 100}]}`)
	for _, tt := range []struct {
		name    string
		query   url.Values
		status  int
		message string // in the 400's message
		devices int
		notFor  int
		busy    int
	}{
		{name: "a query", query: url.Values{"query": {`labels.region = "eu"`}, "image_id": {"img-1"}}, status: 200, devices: 5, busy: 1},
		{name: "an image for another model", query: url.Values{"query": {`labels.region = "us"`}, "image_id": {"img-y"}}, status: 200, devices: 5, notFor: 5},
		{name: "endpoints", query: url.Values{"endpoint": {"dev-01", "dev-02"}}, status: 200, devices: 2},
		{name: "nothing matches", query: url.Values{"query": {`model = "Z"`}}, status: 200},
		{name: "bad query", query: url.Values{"query": {`model ==`}}, status: 400, message: "selector.query"},
		{name: "no selector", query: url.Values{}, status: 400, message: "selector"},
		{name: "both", query: url.Values{"query": {`model = "X"`}, "endpoint": {"dev-01"}}, status: 400, message: "not both"},
		{name: "unknown device", query: url.Values{"endpoint": {"dev-99"}}, status: 400, message: "unknown devices"},
		{name: "unknown image", query: url.Values{"query": {`model = "X"`}, "image_id": {"nope"}}, status: 400, message: "image_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := env.do(t, http.MethodGet, "/api/v1/campaigns/preview?"+tt.query.Encode(), "")
			if tt.status != 200 {
				if msg := wantError(t, r, tt.status, codeInvalidQuery); !strings.Contains(msg, tt.message) {
					t.Errorf("message %q lacks %q", msg, tt.message)
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var p preview
			decodeJSON(t, r.body, &p)
			if p.Devices != tt.devices || len(p.Sample) != tt.devices || p.NotForImage != tt.notFor || p.Busy != tt.busy {
				t.Errorf("preview %+v; want %d devices, %d not for the image, %d in other campaigns", p, tt.devices, tt.notFor, tt.busy)
			}
			if tt.devices > 0 && (len(p.Models) != 1 || p.Models[0].Model != "X" || p.Models[0].Devices != tt.devices) {
				t.Errorf("models %+v", p.Models)
			}
		})
	}
	var list struct {
		Campaigns []struct {
			ID string `json:"id"`
		} `json:"campaigns"`
	}
	r := env.do(t, http.MethodGet, "/api/v1/campaigns", "")
	decodeJSON(t, r.body, &list)
	if len(list.Campaigns) != 1 || list.Campaigns[0].ID != held.ID {
		t.Errorf("campaigns after the previews: %+v, want only %s", list.Campaigns, held.ID)
	}
}

// Issue 15: a campaign a threshold paused at 100 % failures said "wave 2 may start" with its
// gate "open". Its gate is now held, and resume_effect says resume would pause it again.
func TestCampaignPausedByThresholdSaysWhatResumeDoes(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "eu", "image_id": "img-1", "selector": {"query": "labels.region = \"eu\""}, `+
		`"waves": [{"count": 2}, {"percent": 100}], "failure_threshold": {"percent": 10, "min_devices": 2, "action": "pause"}, "start": true}`)
	env.tick(t)
	for _, ep := range env.jobs.started() {
		env.jobs.finish(t, ep, fwupdate.StateFailed, "integrity check failure")
	}
	env.tick(t)
	type view struct {
		State        string `json:"state"`
		ResumeEffect string `json:"resume_effect"`
		Progress     struct {
			Waves []struct {
				Gate       string `json:"gate"`
				GateReason string `json:"gate_reason"`
			} `json:"waves"`
		} `json:"progress"`
	}
	var v view
	r := env.do(t, http.MethodGet, "/api/v1/campaigns/"+c.ID, "")
	decodeJSON(t, r.body, &v)
	if v.State != "paused" {
		t.Fatalf("state %s, want paused by the threshold", v.State)
	}
	if g := v.Progress.Waves[0]; g.Gate != "held" || strings.Contains(g.GateReason, "may start") || !strings.Contains(g.GateReason, "2 of 2 finished devices failed") {
		t.Errorf("wave 1 gate %q: %q", g.Gate, g.GateReason)
	}
	if !strings.Contains(v.ResumeEffect, "Resume will pause the campaign again at once") || !strings.Contains(v.ResumeEffect, "Raise the failure threshold") {
		t.Errorf("resume_effect %q", v.ResumeEffect)
	}

	// Raised as it resumes, the campaign goes on to wave 2, as the words of a campaign an
	// operator paused after wave 1 say.
	if r := env.do(t, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/resume", `{"failure_threshold": {"percent": 100, "action": "pause"}}`, jsonCT...); r.status != 200 {
		t.Fatalf("resume: %d %s", r.status, r.body)
	}
	if r := env.do(t, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/pause", `{}`, jsonCT...); r.status != 200 {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	r = env.do(t, http.MethodGet, "/api/v1/campaigns/"+c.ID, "")
	decodeJSON(t, r.body, &v)
	if v.ResumeEffect != "Resume will start wave 2 (3 devices)" || v.Progress.Waves[0].Gate != "open" {
		t.Errorf("paused by an operator: resume_effect %q, gate %q", v.ResumeEffect, v.Progress.Waves[0].Gate)
	}
	// The history says what the resume changed.
	var h struct {
		Events []struct{ Action, Actor, Reason string } `json:"events"`
	}
	decodeJSON(t, env.do(t, http.MethodGet, "/api/v1/campaigns/"+c.ID+"/history", "").body, &h)
	var resumed string
	for _, e := range h.Events {
		if e.Action == "resume" {
			resumed = e.Actor + ": " + e.Reason
		}
	}
	if resumed != "admin: failure threshold per wave now 100% of at least 0 finished devices: pause" {
		t.Errorf("the resume event says %q", resumed)
	}
}
