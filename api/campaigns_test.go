package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// The campaign routes run over a real *campaigns.Manager and a real SQLite store; only the
// manager's neighbours (the update driver, the fleet, the image catalog) are small fakes.

// testClock is the manager's and the API's clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// campaignJobs stands in for the firmware update driver: jobs stay queued until the test
// finishes them.
type campaignJobs struct {
	mu    sync.Mutex
	clock *testClock
	jobs  []*fwupdate.Job
}

func (u *campaignJobs) Start(_ context.Context, endpoint string, req fwupdate.StartRequest) (*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, j := range u.jobs {
		if j.Endpoint == endpoint && j.Active() {
			return nil, fwupdate.ErrActiveJob
		}
	}
	j, _ := fwupdate.NewJob(fmt.Sprintf("job-%d", len(u.jobs)+1), endpoint,
		fwupdate.ImageRef{ID: req.ImageID, Version: "1.4.2", Size: 4096}, req.Method, fwupdate.DefaultPolicy(), req.CampaignID, u.clock.Now())
	u.jobs = append(u.jobs, j)
	return j.Clone(), nil
}

func (u *campaignJobs) Cancel(_ context.Context, id, reason string) (*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, j := range u.jobs {
		if j.ID != id {
			continue
		}
		if j.State.Terminal() {
			return nil, fwupdate.ErrInvalidTransition
		}
		j.State, j.Reason, j.UpdatedAt = fwupdate.StateCancelled, reason, u.clock.Now()
		return j.Clone(), nil
	}
	return nil, fwupdate.ErrJobNotFound
}

func (u *campaignJobs) CampaignJobs(_ context.Context, campaignID string, since time.Time) ([]*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*fwupdate.Job
	for _, j := range u.jobs {
		if j.CampaignID == campaignID && !j.UpdatedAt.Before(since) {
			out = append(out, j.Clone())
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].UpdatedAt.Before(out[b].UpdatedAt) })
	return out, nil
}

// finish ends endpoint's active job in state with reason.
func (u *campaignJobs) finish(t *testing.T, endpoint string, state fwupdate.State, reason string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, j := range u.jobs {
		if j.Endpoint == endpoint && j.Active() {
			j.State, j.Reason, j.UpdatedAt = state, reason, u.clock.Now()
			return
		}
	}
	t.Fatalf("%s has no active job", endpoint)
}

func (u *campaignJobs) started() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var eps []string
	for _, j := range u.jobs {
		eps = append(eps, j.Endpoint)
	}
	return eps
}

// campaignFleet is ten model X devices, dev-00 to dev-09, on firmware 1.0.0.
type campaignFleet struct {
	regs []*registration.Registration
}

func newCampaignFleet(now time.Time) *campaignFleet {
	f := &campaignFleet{}
	for i := range 10 {
		region := "eu"
		if i%2 == 1 {
			region = "us"
		}
		f.regs = append(f.regs, &registration.Registration{
			ID: fmt.Sprintf("r-%d", i), Endpoint: fmt.Sprintf("dev-%02d", i), Version: "1.1", Lifetime: 300, Binding: "U",
			RegisteredAt: now.Add(-time.Hour), UpdatedAt: now, LastSeen: now, Model: "X", FirmwareVersion: "1.0.0",
			Labels: map[string]string{"region": region},
		})
	}
	return f
}

func (f *campaignFleet) Device(_ context.Context, endpoint string) (*registration.Registration, error) {
	for _, r := range f.regs {
		if r.Endpoint == endpoint {
			return r, nil
		}
	}
	return nil, registration.ErrNotFound
}

func (f *campaignFleet) ListDevices(context.Context, registration.Filter) ([]*registration.Registration, error) {
	return slices.Clone(f.regs), nil
}

type campaignImages map[string]*firmware.Image

func (m campaignImages) Image(_ context.Context, id string) (*firmware.Image, error) {
	if img, ok := m[id]; ok {
		return img, nil
	}
	return nil, firmware.ErrNotFound
}

type campaignEnv struct {
	*testEnv
	mgr   *campaigns.Manager
	jobs  *campaignJobs
	clock *testClock
}

func newCampaignEnv(t *testing.T) *campaignEnv {
	t.Helper()
	clock := &testClock{now: testNow}
	env := newTestEnv(t, Config{Now: clock.Now})
	store, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	jobs := &campaignJobs{clock: clock}
	images := campaignImages{
		"img-1": {ID: "img-1", Version: "1.4.2", Target: firmware.Selector{Model: "X"}},
		"img-y": {ID: "img-y", Version: "2.0.0", Target: firmware.Selector{Model: "Y"}},
	}
	mgr := campaigns.New(campaigns.Config{}, store, jobs, newCampaignFleet(testNow), images, nil, nil, nil, clock.Now)
	env.api.WithCampaigns(mgr)
	return &campaignEnv{testEnv: env, mgr: mgr, jobs: jobs, clock: clock}
}

func (env *campaignEnv) tick(t *testing.T) {
	t.Helper()
	env.clock.advance(time.Second)
	env.mgr.Tick(context.Background())
}

// campaignOut is what the tests read of a campaign answer.
type campaignOut struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	Wave      int    `json:"wave"`
	CreatedBy string `json:"created_by"`
	Progress  struct {
		Total  int            `json:"total"`
		Counts map[string]int `json:"counts"`
		Waves  []struct {
			Wave   int            `json:"wave"`
			Size   int            `json:"size"`
			Counts map[string]int `json:"counts"`
			Gate   string         `json:"gate"`
		} `json:"waves"`
		SuccessRate float64 `json:"success_rate"`
		FailureRate float64 `json:"failure_rate"`
	} `json:"progress"`
	FailureReasons []struct {
		Reason string `json:"reason"`
		Count  int    `json:"count"`
	} `json:"failure_reasons"`
}

func (env *campaignEnv) campaign(t *testing.T, r response, status int) campaignOut {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var c campaignOut
	decodeJSON(t, r.body, &c)
	return c
}

func (env *campaignEnv) create(t *testing.T, body string) campaignOut {
	t.Helper()
	return env.campaign(t, env.do(t, http.MethodPost, "/api/v1/campaigns", body, jsonCT...), http.StatusCreated)
}

// wantRefusal checks a 422 invalid_campaign answer and that its details name fields.
func wantRefusal(t *testing.T, r response, fields ...string) {
	t.Helper()
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	var b struct {
		Error struct {
			Code    string              `json:"code"`
			Message string              `json:"message"`
			Details []campaigns.Problem `json:"details"`
		} `json:"error"`
	}
	decodeJSON(t, r.body, &b)
	if b.Error.Code != codeInvalidCampaign || b.Error.Message == "" {
		t.Fatalf("error %+v, want invalid_campaign with a message", b.Error)
	}
	var got []string
	for _, d := range b.Error.Details {
		if d.Message == "" {
			t.Fatalf("detail %+v has no message", d)
		}
		got = append(got, d.Field)
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Fatalf("details name %v, want %q among them: %s", got, f, r.body)
		}
	}
}

const twoWaves = `"waves": [{"count": 2, "gate": {"manual": true}}, {"percent": 100}]`

func TestCampaignCreate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		status int
		code   string   // for 4xx other than 422
		fields []string // for 422
		check  func(t *testing.T, r response)
	}{
		{name: "dry run stores nothing", status: 200,
			body: `{"name": "eu", "image_id": "img-1", "selector": {"query": "model = \"X\" and labels.region = \"eu\""}, ` + twoWaves + `, "dry_run": true}`,
			check: func(t *testing.T, r response) {
				var d dryRunJSON
				decodeJSON(t, r.body, &d)
				slices.Sort(d.Endpoints)
				if d.Devices != 5 || !slices.Equal(d.Endpoints, []string{"dev-00", "dev-02", "dev-04", "dev-06", "dev-08"}) ||
					!slices.Equal(d.Waves, []waveSizeJSON{{1, 2}, {2, 3}}) {
					t.Fatalf("dry run %+v", d)
				}
			}},
		{name: "draft", status: 201,
			body: `{"name": "all", "image_id": "img-1", "selector": {"endpoints": ["dev-00", "dev-01", "dev-02"]}, ` + twoWaves + `,
				"failure_threshold": {"percent": 10, "min_devices": 5, "action": "pause"}, "pacing": {"max_concurrent": 2},
				"retries": {"in_progress_timeout": "30m", "retryable": 1}, "policy": {"max_attempts": 2}}`,
			check: func(t *testing.T, r response) {
				if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/api/v1/campaigns/cmp_") {
					t.Fatalf("Location %q", loc)
				}
				var c campaignJSON
				decodeJSON(t, r.body, &c)
				if c.State != "draft" || c.Wave != 0 || c.CreatedBy != "admin" || c.ImageVersion != "1.4.2" || c.Method != "auto" ||
					c.Progress.Total != 3 || c.Progress.Counts.Pending != 3 || len(c.Progress.Waves) != 2 ||
					c.Progress.Waves[0].Size != 2 || c.Progress.Waves[0].Gate != "" || c.StartedAt != (time.Time{}) {
					t.Fatalf("campaign %s", r.body)
				}
				if c.FailureThreshold == nil || *c.FailureThreshold != (thresholdJSON{Percent: 10, MinDevices: 5, Action: "pause"}) ||
					c.OverallThreshold != nil || c.Retries.InProgressTimeout != "30m" || *c.Policy.MaxAttempts != 2 ||
					c.Waves[0].Gate == nil || !c.Waves[0].Gate.Manual || c.Waves[1].Percent != 100 {
					t.Fatalf("plan does not round-trip: %s", r.body)
				}
				if c.FailureReasons == nil || !strings.Contains(string(r.body), `"failure_reasons":[]`) {
					t.Fatalf("failure_reasons should be an empty list: %s", r.body)
				}
			}},
		{name: "started", status: 201,
			body: `{"name": "go", "image_id": "img-1", "selector": {"query": "labels.region = \"us\""}, ` + twoWaves + `, "start": true}`,
			check: func(t *testing.T, r response) {
				var c campaignJSON
				decodeJSON(t, r.body, &c)
				if c.State != "running" || c.Wave != 1 || c.StartedAt.IsZero() || c.Progress.Waves[0].Gate != "running" {
					t.Fatalf("campaign %s", r.body)
				}
			}},
		{name: "every part of the plan (the README's example)", status: 201,
			body: `{"name": "eu rollout 1.4.2", "image_id": "img-1",
				"selector": {"query": "model = \"X\" and labels.region = \"eu\" and firmware < \"1.4.2\""},
				"waves": [{"percent": 2, "gate": {"success_percent": 90}, "soak": "10m"}, {"percent": 20, "gate": {"manual": true}}, {"percent": 100}],
				"spread_by": "cell",
				"failure_threshold": {"percent": 10, "min_devices": 5, "action": "pause"},
				"overall_threshold": {"count": 50, "action": "abort"},
				"pacing": {"max_concurrent": 100, "max_starts_per_minute": 60, "per_label_cap": {"key": "cell", "max": 5}},
				"retries": {"in_progress_timeout": "30m", "retryable": 2},
				"schedule": {"windows": [{"cron": "0 2 * * *", "duration": "2h", "time_zone": "Europe/Berlin"}]},
				"start": true}`,
			check: func(t *testing.T, r response) {
				var c campaignJSON
				decodeJSON(t, r.body, &c)
				if c.State != "running" || c.Progress.Total != 5 || c.Waves[0].Soak != "10m" || c.Pacing.PerLabelCap.Max != 5 ||
					c.Schedule == nil || len(c.Schedule.Windows) != 1 || c.Schedule.Windows[0].Duration != "2h" ||
					c.OverallThreshold.Count != 50 || c.SpreadBy != "cell" {
					t.Fatalf("campaign %s", r.body)
				}
			}},
		{name: "unknown field", status: 400, code: codeInvalidJSON,
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, ` + twoWaves + `, "colour": "red"}`},
		{name: "unknown field in a wave", status: 400, code: codeInvalidJSON,
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 100, "size": 3}]}`},
		{name: "not json", status: 400, code: codeInvalidJSON, body: `{"name": `},
		{name: "bad percentages", status: 422, fields: []string{"waves[0].percent", "failure_threshold.percent"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 150}, {"percent": 100}],
				"failure_threshold": {"percent": -1, "action": "pause"}}`},
		{name: "threshold without action", status: 422, fields: []string{"overall_threshold.action"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 100}], "overall_threshold": {"count": 3}}`},
		{name: "unknown image", status: 422, fields: []string{"image_id"},
			body: `{"name": "x", "image_id": "img-9", "selector": {"query": "online"}, "waves": [{"percent": 100}]}`},
		{name: "image for another model", status: 422, fields: []string{"image_id"},
			body: `{"name": "x", "image_id": "img-y", "selector": {"query": "online"}, "waves": [{"percent": 100}]}`},
		{name: "bad query", status: 422, fields: []string{"selector.query"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "model =="}, "waves": [{"percent": 100}]}`},
		{name: "no selector, no name", status: 422, fields: []string{"selector", "name"},
			body: `{"image_id": "img-1", "waves": [{"percent": 100}]}`},
		{name: "selects nobody", status: 422, fields: []string{"selector"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "model = \"Z\""}, "waves": [{"percent": 100}]}`},
		{name: "durations and times that do not parse", status: 422,
			fields: []string{"waves[0].soak", "retries.in_progress_timeout", "schedule.start_at", "schedule.windows[0].duration"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"count": 1, "soak": "ten minutes"}, {"percent": 100}],
				"retries": {"in_progress_timeout": "soon"}, "schedule": {"start_at": "tomorrow", "windows": [{"cron": "0 2 * * *", "duration": "2"}]}}`},
		{name: "bad policy", status: 422, fields: []string{"policy"},
			body: `{"name": "x", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 100}], "policy": {"max_attempts": 0}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newCampaignEnv(t)
			r := env.do(t, http.MethodPost, "/api/v1/campaigns", tt.body, jsonCT...)
			switch {
			case tt.status == 422:
				wantRefusal(t, r, tt.fields...)
			case tt.code != "":
				wantError(t, r, tt.status, tt.code)
			case r.status != tt.status:
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
			var l campaignList
			decodeJSON(t, env.do(t, http.MethodGet, "/api/v1/campaigns", "").body, &l)
			if want := map[bool]int{true: 1, false: 0}[tt.status == 201]; len(l.Campaigns) != want {
				t.Fatalf("%d campaigns stored, want %d", len(l.Campaigns), want)
			}
		})
	}
}

func TestCampaignConflict(t *testing.T) {
	env := newCampaignEnv(t)
	env.create(t, `{"name": "a", "image_id": "img-1", "selector": {"endpoints": ["dev-00", "dev-01"]}, "waves": [{"percent": 100}], "start": true}`)
	r := env.do(t, http.MethodPost, "/api/v1/campaigns",
		`{"name": "b", "image_id": "img-1", "selector": {"endpoints": ["dev-01", "dev-02"]}, "waves": [{"percent": 100}]}`, jsonCT...)
	if msg := wantError(t, r, http.StatusConflict, codeDeviceConflict); !strings.Contains(msg, "dev-01") || strings.Contains(msg, "dev-02") {
		t.Fatalf("message %q should name dev-01 only", msg)
	}
}

func TestCampaignGetAndList(t *testing.T) {
	env := newCampaignEnv(t)
	draft := env.create(t, `{"name": "draft", "image_id": "img-1", "selector": {"endpoints": ["dev-00"]}, "waves": [{"percent": 100}]}`)
	env.clock.advance(time.Minute) // newest first needs distinct creation times
	running := env.create(t, `{"name": "running", "image_id": "img-1", "selector": {"endpoints": ["dev-01"]}, "waves": [{"percent": 100}], "start": true}`)
	env.clock.advance(time.Minute)
	paused := env.create(t, `{"name": "paused", "image_id": "img-1", "selector": {"endpoints": ["dev-02"]}, "waves": [{"percent": 100}], "start": true}`)
	env.campaign(t, env.do(t, http.MethodPost, "/api/v1/campaigns/"+paused.ID+"/pause", `{"reason": "night"}`, jsonCT...), 200)

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{paused.ID, running.ID, draft.ID}},
		{"?state=running", []string{running.ID}},
		{"?state=paused,draft", []string{paused.ID, draft.ID}},
		{"?state=running&state=draft", []string{running.ID, draft.ID}},
		{"?state=completed", nil},
	} {
		t.Run("list"+tt.query, func(t *testing.T) {
			r := env.do(t, http.MethodGet, "/api/v1/campaigns"+tt.query, "")
			var l struct {
				Campaigns []campaignOut `json:"campaigns"`
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			decodeJSON(t, r.body, &l)
			var ids []string
			for _, c := range l.Campaigns {
				ids = append(ids, c.ID)
				if c.Progress.Total != 1 {
					t.Fatalf("campaign %s without progress: %s", c.ID, r.body)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("ids %v, want %v", ids, tt.want)
			}
		})
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/campaigns?state=sleeping", ""), 400, codeInvalidQuery)

	got := env.campaign(t, env.do(t, http.MethodGet, "/api/v1/campaigns/"+paused.ID, ""), 200)
	if got.Name != "paused" || got.State != "paused" || got.Reason != "night" {
		t.Fatalf("campaign %+v", got)
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/campaigns/cmp_nope", ""), 404, codeNotFound)
}

// TestCampaignLifecycle drives one campaign through its actions, with ticks in between, and
// checks the answers and the 409s of actions the state does not allow.
func TestCampaignLifecycle(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "eu", "image_id": "img-1", "selector": {"query": "labels.region = \"eu\""}, `+twoWaves+`, "start": true}`)
	path := "/api/v1/campaigns/" + c.ID
	act := func(action, body string) response {
		t.Helper()
		return env.do(t, http.MethodPost, path+"/"+action, body, jsonCT...)
	}
	get := func() campaignOut { t.Helper(); return env.campaign(t, env.do(t, http.MethodGet, path, ""), 200) }

	env.tick(t)
	c = get()
	if c.Progress.Counts["in_progress"] != 2 || c.Progress.Counts["pending"] != 3 || c.Wave != 1 {
		t.Fatalf("after the first tick: %+v", c.Progress)
	}
	first := env.jobs.started()
	env.jobs.finish(t, first[0], fwupdate.StateSucceeded, "")
	env.jobs.finish(t, first[1], fwupdate.StateFailed, "integrity check failure")
	env.tick(t)
	c = get()
	if c.State != "waiting-for-approval" || c.Progress.Waves[0].Gate != "awaiting-approval" || c.Progress.SuccessRate != 0.5 ||
		len(c.FailureReasons) != 1 || c.FailureReasons[0].Reason != "integrity check failure" {
		t.Fatalf("at the gate: %+v", c)
	}

	steps := []struct {
		action, body string
		status       int
		code         string // error code, or
		state        string // the state after
		fields       []string
		tick         bool
	}{
		{action: "start", status: 409, code: codeInvalidTransition},
		{action: "pause", body: `{"reason": "checking the failure", "extra": 1}`, status: 400, code: codeInvalidJSON},
		{action: "pause", body: `{"reason": "checking the failure"}`, status: 200, state: "paused"},
		{action: "pause", status: 409, code: codeInvalidTransition},
		{action: "resume", body: `{"failure_threshold": {"percent": 200, "action": "pause"}}`, status: 422, fields: []string{"failure_threshold.percent"}},
		{action: "resume", body: `{"failure_threshold": {"percent": 60, "min_devices": 2, "action": "pause"}}`, status: 200, state: "running"},
		{action: "approve", status: 200, state: "running", tick: true},
		{action: "abort", body: `{"mode": "sideways"}`, status: 400, code: codeInvalidRequest},
		{action: "abort", body: `{"reason": "wrong image"}`, status: 200, state: "aborted", tick: true},
		{action: "abort", status: 409, code: codeInvalidTransition},
		{action: "approve", status: 409, code: codeInvalidTransition},
		{action: "retry", body: `{"all": true}`, status: 400, code: codeInvalidJSON},
		{action: "retry", status: 200, state: "running", tick: true},
	}
	for i, s := range steps {
		r := act(s.action, s.body)
		switch {
		case s.fields != nil:
			wantRefusal(t, r, s.fields...)
		case s.code != "":
			wantError(t, r, s.status, s.code)
		default:
			if got := env.campaign(t, r, s.status); got.State != s.state {
				t.Fatalf("step %d %s: state %s, want %s", i, s.action, got.State, s.state)
			}
		}
		if s.tick {
			env.tick(t)
		}
	}
	c = get()
	// approve opened wave 2 (3 devices), whose updates the soft abort let run; the retry gave
	// the failed device of wave 1 a new attempt.
	if n := c.Progress.Counts; n["succeeded"] != 1 || n["in_progress"] != 4 || n["failed"] != 0 || c.State != "running" {
		t.Fatalf("counts %v, state %s: %s", n, c.State, c.Reason)
	}
	if c.Progress.Waves[1].Gate == "" || c.Wave != 2 {
		t.Fatalf("wave 2 started: %+v", c)
	}
	wantError(t, env.do(t, http.MethodPost, "/api/v1/campaigns/cmp_nope/pause", ""), 404, codeNotFound)
}

// TestCampaignAbortHard: a hard abort cancels the updates in flight.
func TestCampaignAbortHard(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "stop", "image_id": "img-1", "selector": {"endpoints": ["dev-00", "dev-01"]}, "waves": [{"percent": 100}], "start": true}`)
	env.tick(t)
	path := "/api/v1/campaigns/" + c.ID
	if c = env.campaign(t, env.do(t, http.MethodPost, path+"/abort", `{"reason": "wrong image", "mode": "hard"}`, jsonCT...), 200); c.State != "aborted" || c.Reason != "wrong image" {
		t.Fatalf("aborted: %+v", c)
	}
	env.tick(t)
	if c = env.campaign(t, env.do(t, http.MethodGet, path, ""), 200); c.Progress.Counts["cancelled"] != 2 || c.Progress.Counts["in_progress"] != 0 {
		t.Fatalf("after the hard abort: %v", c.Progress.Counts)
	}
}

func TestCampaignDevices(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "all", "image_id": "img-1", "selector": {"query": "model = \"X\""}, "waves": [{"count": 4}, {"percent": 100}], "start": true}`)
	env.tick(t)
	path := "/api/v1/campaigns/" + c.ID + "/devices"

	// Paging through every device, three at a time, yields each once in endpoint order.
	var all []campaignDeviceJSON
	next := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("paging does not end")
		}
		r := env.do(t, http.MethodGet, path+"?limit=3&after="+next, "")
		var l campaignDeviceList
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		decodeJSON(t, r.body, &l)
		all = append(all, l.Devices...)
		if next = l.Next; next == "" {
			break
		}
	}
	if len(all) != 10 || all[0].Endpoint != "dev-00" || all[9].Endpoint != "dev-09" ||
		!slices.IsSortedFunc(all, func(a, b campaignDeviceJSON) int { return strings.Compare(a.Endpoint, b.Endpoint) }) {
		t.Fatalf("devices %+v", all)
	}

	var l campaignDeviceList
	decodeJSON(t, env.do(t, http.MethodGet, path+"?state=in_progress", "").body, &l)
	if len(l.Devices) != 4 || l.Next != "" {
		t.Fatalf("in progress: %+v", l)
	}
	for _, d := range l.Devices {
		if d.Wave != 1 || d.JobID == "" || d.JobState != "queued" || d.Attempts != 1 || d.StartedAt.IsZero() {
			t.Fatalf("device %+v", d)
		}
	}
	decodeJSON(t, env.do(t, http.MethodGet, path+"?state=pending&limit=1000", "").body, &l)
	if len(l.Devices) != 6 || l.Devices[0].Wave != 2 {
		t.Fatalf("pending: %+v", l)
	}

	for _, bad := range []struct {
		query  string
		status int
		code   string
	}{
		{"?state=sleeping", 400, codeInvalidQuery},
		{"?limit=0", 400, codeInvalidQuery},
		{"?after=%%%", 400, codeInvalidQuery},
	} {
		wantError(t, env.do(t, http.MethodGet, path+strings.ReplaceAll(bad.query, "%%%", "!!"), ""), bad.status, bad.code)
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/campaigns/cmp_nope/devices", ""), 404, codeNotFound)
}

func TestCampaignRoles(t *testing.T) {
	env := newCampaignEnv(t)
	body := `{"name": "r", "image_id": "img-1", "selector": {"endpoints": ["dev-00"]}, "waves": [{"percent": 100}]}`
	for _, tt := range []struct {
		role   apitoken.Role
		method string
		status int
	}{
		{apitoken.RoleRelease, http.MethodPost, 201},
		{apitoken.RoleSupport, http.MethodPost, 403},
		{apitoken.RoleCI, http.MethodPost, 403},
		{apitoken.RoleSupport, http.MethodGet, 200},
		{apitoken.RoleCI, http.MethodGet, 403},
	} {
		t.Run(string(tt.role)+" "+tt.method, func(t *testing.T) {
			b := ""
			if tt.method == http.MethodPost {
				b = body
			}
			r := env.do(t, tt.method, "/api/v1/campaigns", b, "Authorization", bearer(env.auth.secrets[tt.role]), "Content-Type", "application/json")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 201 {
				if c := env.campaign(t, r, 201); c.CreatedBy != string(tt.role) {
					t.Fatalf("created_by %q, want the token's name", c.CreatedBy)
				}
			}
		})
	}
}

func TestCampaignsWithoutManager(t *testing.T) {
	env := newTestEnv(t, Config{})
	for _, p := range []string{"/api/v1/campaigns", "/api/v1/campaigns/cmp_x", "/api/v1/campaigns/cmp_x/events"} {
		wantError(t, env.do(t, http.MethodGet, p, ""), 404, codeNotFound)
	}
	wantError(t, env.do(t, http.MethodPost, "/api/v1/campaigns/cmp_x/start", ""), 404, codeNotFound)
}

type sseEvent struct {
	event, data string
}

// readSSE parses a text/event-stream into out until the body ends.
func readSSE(body io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestCampaignEvents(t *testing.T) {
	env := newCampaignEnv(t)
	c := env.create(t, `{"name": "live", "image_id": "img-1", "selector": {"endpoints": ["dev-00", "dev-01"]}, "waves": [{"percent": 100}], "start": true}`)
	srv := httptest.NewServer(env.h)
	defer srv.Close() // waits for the stream's handler: it must return once the client leaves

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/campaigns/"+c.ID+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 16)
	done := make(chan struct{})
	go func() { defer close(done); readSSE(res.Body, events) }()
	defer func() { cancel(); <-done }()

	next := func(want string) sseEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended, want %s", want)
			}
			if ev.event != want {
				t.Fatalf("event %q (%s), want %q", ev.event, ev.data, want)
			}
			return ev
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s event", want)
		}
		return sseEvent{}
	}
	progress := func() campaignOut {
		t.Helper()
		var out campaignOut
		decodeJSON(t, []byte(next("progress").data), &out)
		return out
	}

	if p := progress(); p.ID != c.ID || p.State != "running" || p.Progress.Counts["pending"] != 2 {
		t.Fatalf("first event %+v", p)
	}
	env.tick(t) // both updates start: the counts change
	if p := progress(); p.Progress.Counts["in_progress"] != 2 {
		t.Fatalf("after the tick %+v", p.Progress)
	}
	env.jobs.finish(t, "dev-00", fwupdate.StateSucceeded, "")
	env.tick(t)
	if p := progress(); p.Progress.Counts["succeeded"] != 1 || p.Progress.Counts["in_progress"] != 1 {
		t.Fatalf("after a success %+v", p.Progress)
	}
	env.campaign(t, env.do(t, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/pause", `{"reason": "lunch"}`, jsonCT...), 200)
	var st campaignStateJSON
	if err := json.Unmarshal([]byte(next("state").data), &st); err != nil || st.From != "running" || st.To != "paused" || st.Reason != "lunch" {
		t.Fatalf("state event %+v (%v)", st, err)
	}
	if p := progress(); p.State != "paused" {
		t.Fatalf("after the pause %+v", p)
	}

	// An unknown campaign has no stream.
	wantError(t, env.do(t, http.MethodGet, "/api/v1/campaigns/cmp_nope/events", ""), 404, codeNotFound)
}
