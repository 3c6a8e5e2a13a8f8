package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
)

// fakeUpdates keeps jobs in memory. It checks nothing of the driver's rules: the API's job is
// translation, and that is what these tests look at.
type fakeUpdates struct {
	mu      sync.Mutex
	jobs    map[string]*fwupdate.Job
	history map[string][]fwupdate.Transition
	starts  []startCall
	cancels []cancelCall
	limits  []int
	err     error // returned by every method when set
	histErr error
}

type startCall struct {
	endpoint string
	req      fwupdate.StartRequest
}

type cancelCall struct {
	id, reason string
}

func newFakeUpdates() *fakeUpdates {
	return &fakeUpdates{jobs: map[string]*fwupdate.Job{}, history: map[string][]fwupdate.Transition{}}
}

func (f *fakeUpdates) Start(_ context.Context, endpoint string, req fwupdate.StartRequest) (*fwupdate.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, startCall{endpoint, req})
	if f.err != nil {
		return nil, f.err
	}
	p := fwupdate.DefaultPolicy()
	if req.Policy != nil {
		p = *req.Policy
	}
	j, tr := fwupdate.NewJob(fmt.Sprintf("job-%d", len(f.starts)), endpoint,
		fwupdate.ImageRef{ID: req.ImageID, Version: "1.4.2", Size: 4096}, req.Method, p, "", testNow)
	f.jobs[j.ID] = j
	f.history[j.ID] = []fwupdate.Transition{tr}
	return j.Clone(), nil
}

func (f *fakeUpdates) Jobs(_ context.Context, endpoint string, limit int) ([]*fwupdate.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	if f.err != nil {
		return nil, f.err
	}
	var out []*fwupdate.Job
	for _, j := range f.jobs {
		if j.Endpoint == endpoint {
			out = append(out, j.Clone())
		}
	}
	// newest first; ids order the fake's jobs
	for i := 1; i < len(out); i++ {
		for k := i; k > 0 && out[k].ID > out[k-1].ID; k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out[:min(len(out), limit)], nil
}

func (f *fakeUpdates) Job(_ context.Context, id string) (*fwupdate.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	j, ok := f.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, fwupdate.ErrJobNotFound)
	}
	return j.Clone(), nil
}

func (f *fakeUpdates) History(_ context.Context, id string) ([]fwupdate.Transition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.histErr != nil {
		return nil, f.histErr
	}
	return append([]fwupdate.Transition(nil), f.history[id]...), nil
}

func (f *fakeUpdates) Cancel(_ context.Context, id, reason string) (*fwupdate.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, cancelCall{id, reason})
	j, ok := f.jobs[id]
	if !ok {
		return nil, fwupdate.ErrJobNotFound
	}
	tr, err := j.Apply(fwupdate.StateCancelled, testNow.Add(time.Minute), reason)
	if err != nil {
		return nil, err
	}
	f.history[id] = append(f.history[id], tr)
	return j.Clone(), nil
}

func (f *fakeUpdates) add(j *fwupdate.Job, hist ...fwupdate.Transition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[j.ID] = j
	f.history[j.ID] = hist
}

func newUpdatesEnv(t *testing.T) (*testEnv, *fakeUpdates) {
	t.Helper()
	env := newTestEnv(t, Config{})
	u := newFakeUpdates()
	env.api.WithUpdates(u)
	return env, u
}

var jsonCT = []string{"Content-Type", "application/json"}

// deliveringJob is a job in the middle of its second attempt, with everything the view shows set.
func deliveringJob() (*fwupdate.Job, []fwupdate.Transition) {
	p := fwupdate.DefaultPolicy()
	p.Strict, p.BlockSize, p.BackoffBase = true, 512, 90*time.Second
	j, created := fwupdate.NewJob("job-7", "urn:imei:1", fwupdate.ImageRef{ID: "img-1", Version: "1.4.2", Size: 4096},
		fwupdate.MethodPull, p, "camp-1", testNow)
	hist := []fwupdate.Transition{created}
	step := func(to fwupdate.State, at time.Time, reason string) {
		tr, err := j.Apply(to, at, reason)
		if err != nil {
			panic(err)
		}
		hist = append(hist, tr)
	}
	step(fwupdate.StateDelivering, testNow.Add(time.Second), "")
	j.DeviceState, j.DeviceResult = 1, 4
	step(fwupdate.StateFailed, testNow.Add(time.Minute), "connection lost during downloading process")
	j.NextAttemptAt = testNow.Add(3 * time.Minute)
	step(fwupdate.StateQueued, testNow.Add(3*time.Minute), "")
	step(fwupdate.StateDelivering, testNow.Add(4*time.Minute), "")
	j.Delivery, j.BytesDelivered, j.FromVersion, j.DeviceResult = fwupdate.DeliveryCoAP, 1024, "1.4.1", 0
	return j, hist
}

func TestUpdateView(t *testing.T) {
	env, u := newUpdatesEnv(t)
	j, hist := deliveringJob()
	u.add(j, hist...)
	r := env.do(t, http.MethodGet, "/api/v1/devices/urn:imei:1/updates/job-7", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	jsonEqual(t, r.body, `{
		"id": "job-7", "endpoint": "urn:imei:1", "image_id": "img-1", "image_version": "1.4.2", "image_size": 4096,
		"method": "pull", "delivery": "coap", "state": "delivering", "reason": "", "attempt": 2, "max_attempts": 3,
		"created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T12:04:00Z",
		"steps": {"queued": "2026-03-01T12:03:00Z", "delivering": "2026-03-01T12:04:00Z", "failed": "2026-03-01T12:01:00Z"},
		"bytes_delivered": 1024, "progress": 0.25,
		"device_state": 1, "device_state_text": "downloading", "device_result": 0, "device_result_text": "initial value",
		"from_version": "1.4.1", "campaign_id": "camp-1",
		"policy": {"max_attempts": 3, "backoff": "1m30s", "backoff_max": "1h", "strict": true, "min_link_rate": 512,
			"step_slack": "5m", "block_size": 512},
		"links": {"self": "/api/v1/devices/urn:imei:1/updates/job-7"},
		"history": [
			{"seq": 1, "from": "", "to": "queued", "at": "2026-03-01T12:00:00Z", "reason": "", "attempt": 1},
			{"seq": 2, "from": "queued", "to": "delivering", "at": "2026-03-01T12:00:01Z", "reason": "", "attempt": 1},
			{"seq": 3, "from": "delivering", "to": "failed", "at": "2026-03-01T12:01:00Z",
				"reason": "connection lost during downloading process", "device_state": 1, "device_result": 4, "attempt": 1},
			{"seq": 4, "from": "failed", "to": "queued", "at": "2026-03-01T12:03:00Z", "reason": "",
				"device_state": 1, "device_result": 4, "attempt": 2},
			{"seq": 5, "from": "queued", "to": "delivering", "at": "2026-03-01T12:04:00Z", "reason": "",
				"device_state": 1, "device_result": 4, "attempt": 2}
		]
	}`)

	// A new job: nothing reported by the device, no retry, no campaign: those fields are left out.
	fresh, created := fwupdate.NewJob("job-8", "dev-a", fwupdate.ImageRef{ID: "img-2", Version: "2.0.0"},
		fwupdate.MethodAuto, fwupdate.DefaultPolicy(), "", testNow)
	u.add(fresh, created)
	r = env.do(t, http.MethodGet, "/api/v1/devices/dev-a/updates/job-8", "")
	var got map[string]any
	decodeJSON(t, r.body, &got)
	for _, k := range []string{"device_state", "device_state_text", "device_result", "device_result_text", "next_attempt_at", "campaign_id"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s present in a fresh job: %s", k, r.body)
		}
	}
	if got["progress"] != 0.0 || got["delivery"] != "" || got["state"] != "queued" {
		t.Errorf("fresh job %s", r.body)
	}
	want := map[string]any{"max_attempts": 3.0, "backoff": "1m", "backoff_max": "1h", "strict": false,
		"min_link_rate": 512.0, "step_slack": "5m", "block_size": 0.0}
	if !reflect.DeepEqual(got["policy"], want) {
		t.Errorf("default policy %v, want %v", got["policy"], want)
	}
}

func TestUpdateViewRetryScheduled(t *testing.T) {
	env, u := newUpdatesEnv(t)
	j, _ := fwupdate.NewJob("job-1", "dev-a", fwupdate.ImageRef{ID: "img-1", Version: "1", Size: 10},
		fwupdate.MethodPush, fwupdate.DefaultPolicy(), "", testNow)
	if _, err := j.Settle(fwupdate.Decision{Action: fwupdate.ActionRetry, RetryAt: testNow.Add(time.Hour), Reason: "out of RAM"}, testNow); err != nil {
		t.Fatal(err)
	}
	j.BytesDelivered = 20 // more than the image: progress stays at 1
	u.add(j)
	r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a/updates", "")
	var got struct {
		Updates []map[string]any `json:"updates"`
	}
	decodeJSON(t, r.body, &got)
	if len(got.Updates) != 1 || got.Updates[0]["next_attempt_at"] != "2026-03-01T13:00:00Z" || got.Updates[0]["progress"] != 1.0 ||
		got.Updates[0]["state"] != "failed" {
		t.Fatalf("list %s", r.body)
	}
}

func TestUpdateStart(t *testing.T) {
	def := fwupdate.DefaultPolicy()
	with := func(change func(*fwupdate.Policy)) *fwupdate.Policy {
		p := def
		change(&p)
		return &p
	}
	for _, tt := range []struct {
		name, body string
		want       fwupdate.StartRequest
	}{
		{"no policy, no method", `{"image_id":"img-1"}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodAuto}},
		{"push", `{"image_id":"img-1","method":"push"}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodPush}},
		{"empty policy is the default one", `{"image_id":"img-1","method":"pull","policy":{}}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodPull, Policy: &def}},
		{"every policy field", `{"image_id":"img-1","method":"auto","policy":{"max_attempts":20,"backoff":"90s",
			"backoff_max":"2h30m","strict":true,"min_link_rate":2048,"step_slack":"0s","block_size":16}}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodAuto, Policy: &fwupdate.Policy{MaxAttempts: 20,
				BackoffBase: 90 * time.Second, BackoffMax: 150 * time.Minute, Strict: true, MinLinkRate: 2048, BlockSize: 16}}},
		{"some policy fields", `{"image_id":"img-1","policy":{"max_attempts":1,"block_size":1024}}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodAuto,
				Policy: with(func(p *fwupdate.Policy) { p.MaxAttempts, p.BlockSize = 1, 1024 })}},
		{"block size 0 is the default", `{"image_id":"img-1","policy":{"block_size":0,"min_link_rate":0}}`,
			fwupdate.StartRequest{ImageID: "img-1", Method: fwupdate.MethodAuto,
				Policy: with(func(p *fwupdate.Policy) { p.MinLinkRate = 0 })}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, u := newUpdatesEnv(t)
			r := env.do(t, http.MethodPost, "/api/v1/devices/urn:imei:1/updates", tt.body, jsonCT...)
			if r.status != http.StatusAccepted {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if len(u.starts) != 1 || u.starts[0].endpoint != "urn:imei:1" || !reflect.DeepEqual(u.starts[0].req, tt.want) {
				t.Fatalf("Start calls %+v, want one with %+v", u.starts, tt.want)
			}
			if loc := r.header.Get("Location"); loc != "/api/v1/devices/urn:imei:1/updates/job-1" {
				t.Fatalf("Location %q", loc)
			}
			var got map[string]any
			decodeJSON(t, r.body, &got)
			if got["id"] != "job-1" || got["state"] != "queued" || got["image_id"] != "img-1" || got["history"] != nil {
				t.Fatalf("answer %s", r.body)
			}
		})
	}
}

func TestUpdateStartErrors(t *testing.T) {
	const path = "/api/v1/devices/dev-a/updates"
	for _, tt := range []struct {
		name, body string
		header     []string
		err        error // the driver's answer
		status     int
		code       string
		msg        string // part of the message
	}{
		{name: "not JSON", body: `{"image_id":`, header: jsonCT, status: 400, code: codeInvalidJSON},
		{name: "empty body", body: ``, header: jsonCT, status: 400, code: codeInvalidJSON, msg: "empty"},
		{name: "trailing data", body: `{"image_id":"a"} {}`, header: jsonCT, status: 400, code: codeInvalidJSON},
		{name: "unknown field", body: `{"image_id":"a","priority":1}`, header: jsonCT, status: 400, code: codeInvalidJSON, msg: "priority"},
		{name: "unknown policy field", body: `{"image_id":"a","policy":{"retries":3}}`, header: jsonCT, status: 400, code: codeInvalidJSON, msg: "retries"},
		{name: "wrong type", body: `{"image_id":"a","policy":{"backoff":60}}`, header: jsonCT, status: 400, code: codeInvalidJSON},
		{name: "not JSON media type", body: `image_id=a`, header: []string{"Content-Type", "text/plain"}, status: 415, code: codeUnsupportedMediaType},
		{name: "no image", body: `{"method":"push"}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "image_id is missing"},
		{name: "unknown method", body: `{"image_id":"a","method":"sideload"}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: `method must be pull, push or auto, not "sideload"`},
		{name: "max_attempts 0", body: `{"image_id":"a","policy":{"max_attempts":0}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.max_attempts must be 1 to 20, not 0"},
		{name: "max_attempts 21", body: `{"image_id":"a","policy":{"max_attempts":21}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.max_attempts"},
		{name: "block_size not a power of two", body: `{"image_id":"a","policy":{"block_size":100}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.block_size must be 0 or a power of two from 16 to 1024, not 100"},
		{name: "block_size too small", body: `{"image_id":"a","policy":{"block_size":8}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.block_size"},
		{name: "block_size too large", body: `{"image_id":"a","policy":{"block_size":2048}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.block_size"},
		{name: "block_size negative", body: `{"image_id":"a","policy":{"block_size":-16}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.block_size"},
		{name: "negative backoff", body: `{"image_id":"a","policy":{"backoff":"-1m"}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: `policy.backoff must not be negative, not "-1m"`},
		{name: "bad backoff_max", body: `{"image_id":"a","policy":{"backoff_max":"an hour"}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: `policy.backoff_max must be a duration`},
		{name: "bad step_slack", body: `{"image_id":"a","policy":{"step_slack":"5"}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.step_slack"},
		{name: "negative min_link_rate", body: `{"image_id":"a","policy":{"min_link_rate":-1}}`, header: jsonCT, status: 400, code: codeInvalidRequest, msg: "policy.min_link_rate"},
		{name: "driver refuses", body: `{"image_id":"a"}`, header: jsonCT, status: 400, code: codeInvalidRequest,
			err: fmt.Errorf("%w: device has no Object 5", fwupdate.ErrInvalidRequest), msg: "invalid request: device has no Object 5"},
		{name: "image not found", body: `{"image_id":"img-9"}`, header: jsonCT, status: 422, code: codeImageNotFound,
			err: fmt.Errorf("start: %w", fwupdate.ErrImageNotFound), msg: "image img-9 does not exist"},
		{name: "device not found", body: `{"image_id":"a"}`, header: jsonCT, status: 404, code: codeNotFound,
			err: fwupdate.ErrDeviceNotFound, msg: "device dev-a has never registered"},
		{name: "active job", body: `{"image_id":"a"}`, header: jsonCT, status: 409, code: codeActiveJob,
			err: fwupdate.ErrActiveJob, msg: "device dev-a already has an update in progress"},
		{name: "driver not running", body: `{"image_id":"a"}`, header: jsonCT, status: 503, code: codeUnavailable, err: fwupdate.ErrNotRunning},
		{name: "store failure", body: `{"image_id":"a"}`, header: jsonCT, status: 500, code: codeInternal, err: errors.New("sqlstore: disk full")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, u := newUpdatesEnv(t)
			u.err = tt.err
			msg := wantError(t, env.do(t, http.MethodPost, path, tt.body, tt.header...), tt.status, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q, want it to hold %q", msg, tt.msg)
			}
			if strings.Contains(msg, "fwupdate:") || strings.Contains(msg, "sqlstore") {
				t.Fatalf("message %q leaks package names", msg)
			}
			if calls := len(u.starts); tt.err == nil && calls != 0 {
				t.Fatalf("a refused request reached the driver")
			}
		})
	}
}

func TestUpdateList(t *testing.T) {
	env, u := newUpdatesEnv(t)
	for i := 1; i <= 3; i++ {
		j, _ := fwupdate.NewJob(fmt.Sprintf("job-%d", i), "dev-a", fwupdate.ImageRef{ID: "img-1"}, fwupdate.MethodAuto,
			fwupdate.DefaultPolicy(), "", testNow.Add(time.Duration(i)*time.Minute))
		u.add(j)
	}
	other, _ := fwupdate.NewJob("job-4", "dev-b", fwupdate.ImageRef{ID: "img-1"}, fwupdate.MethodAuto, fwupdate.DefaultPolicy(), "", testNow)
	u.add(other)

	for _, tt := range []struct {
		query     string
		wantLimit int
		wantIDs   []string
	}{
		{"", 20, []string{"job-3", "job-2", "job-1"}},
		{"?limit=2", 2, []string{"job-3", "job-2"}},
		{"?limit=200", 200, []string{"job-3", "job-2", "job-1"}},
		{"?limit=5000", 200, []string{"job-3", "job-2", "job-1"}},
	} {
		t.Run("limit"+tt.query, func(t *testing.T) {
			r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a/updates"+tt.query, "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var got struct {
				Updates []jobJSON `json:"updates"`
			}
			decodeJSON(t, r.body, &got)
			var ids []string
			for _, j := range got.Updates {
				ids = append(ids, j.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Fatalf("ids %v, want %v", ids, tt.wantIDs)
			}
			if last := u.limits[len(u.limits)-1]; last != tt.wantLimit {
				t.Fatalf("driver asked for %d jobs, want %d", last, tt.wantLimit)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		r := env.do(t, http.MethodGet, "/api/v1/devices/dev-z/updates", "")
		if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"updates":[]}` {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	for _, q := range []string{"0", "-1", "ten", "1.5"} {
		t.Run("bad limit "+q, func(t *testing.T) {
			wantError(t, env.do(t, http.MethodGet, "/api/v1/devices/dev-a/updates?limit="+q, ""), 400, codeInvalidQuery)
		})
	}
	t.Run("driver not running", func(t *testing.T) {
		u.err = fwupdate.ErrNotRunning
		defer func() { u.err = nil }()
		wantError(t, env.do(t, http.MethodGet, "/api/v1/devices/dev-a/updates", ""), 503, codeUnavailable)
	})
}

func TestUpdateGet(t *testing.T) {
	env, u := newUpdatesEnv(t)
	j, hist := deliveringJob()
	u.add(j, hist...)
	onB, _ := fwupdate.NewJob("job-b", "weird/name with space", fwupdate.ImageRef{ID: "img-1"}, fwupdate.MethodAuto,
		fwupdate.DefaultPolicy(), "", testNow)
	u.add(onB)

	r := env.do(t, http.MethodGet, "/api/v1/devices/weird%2Fname%20with%20space/updates/job-b", "")
	var got jobDetailJSON
	decodeJSON(t, r.body, &got)
	if r.status != 200 || got.ID != "job-b" || got.History == nil || got.Links.Self != "/api/v1/devices/weird%2Fname%20with%20space/updates/job-b" {
		t.Fatalf("status %d: %s", r.status, r.body)
	}

	for _, tt := range []struct {
		name, target string
		histErr      error
		status       int
		code, msg    string
	}{
		{name: "another device's job", target: "/api/v1/devices/dev-a/updates/job-7", status: 404, code: codeNotFound,
			msg: "update job-7 of device dev-a does not exist"},
		{name: "unknown job", target: "/api/v1/devices/urn:imei:1/updates/job-99", status: 404, code: codeNotFound,
			msg: "update job-99 of device urn:imei:1 does not exist"},
		{name: "history fails", target: "/api/v1/devices/urn:imei:1/updates/job-7", histErr: errors.New("sqlstore: closed"),
			status: 500, code: codeInternal},
		{name: "wrong method", target: "/api/v1/devices/urn:imei:1/updates/job-7", status: 405, code: codeMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u.histErr = tt.histErr
			defer func() { u.histErr = nil }()
			method := http.MethodGet
			if tt.status == 405 {
				method = http.MethodDelete
			}
			msg := wantError(t, env.do(t, method, tt.target, ""), tt.status, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q, want %q", msg, tt.msg)
			}
		})
	}
}

func TestUpdateCancel(t *testing.T) {
	for _, tt := range []struct {
		name, target, body string
		header             []string
		ended              bool // the job already succeeded
		status             int
		code               string
		wantReason         string
	}{
		{name: "with a reason", target: "job-1", body: `{"reason":" wrong image "}`, header: jsonCT, status: 200, wantReason: "wrong image"},
		{name: "no body", target: "job-1", status: 200},
		{name: "empty object", target: "job-1", body: `{}`, header: jsonCT, status: 200},
		{name: "not JSON", target: "job-1", body: `{"reason":`, header: jsonCT, status: 400, code: codeInvalidJSON},
		{name: "unknown field", target: "job-1", body: `{"why":"x"}`, header: jsonCT, status: 400, code: codeInvalidJSON},
		{name: "reason too long", target: "job-1", body: `{"reason":"` + strings.Repeat("x", 1025) + `"}`, header: jsonCT, status: 400, code: codeInvalidRequest},
		{name: "already ended", target: "job-1", ended: true, status: 409, code: codeJobEnded},
		{name: "unknown job", target: "job-9", status: 404, code: codeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, u := newUpdatesEnv(t)
			j, created := fwupdate.NewJob("job-1", "dev-a", fwupdate.ImageRef{ID: "img-1"}, fwupdate.MethodAuto, fwupdate.DefaultPolicy(), "", testNow)
			if tt.ended {
				j.State = fwupdate.StateSucceeded
			}
			u.add(j, created)
			r := env.do(t, http.MethodPost, "/api/v1/devices/dev-a/updates/"+tt.target+"/cancel", tt.body, tt.header...)
			if tt.status != 200 {
				wantError(t, r, tt.status, tt.code)
				return
			}
			var got jobJSON
			decodeJSON(t, r.body, &got)
			if r.status != 200 || got.State != "cancelled" || got.Reason != tt.wantReason {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if len(u.cancels) != 1 || u.cancels[0] != (cancelCall{"job-1", tt.wantReason}) {
				t.Fatalf("Cancel calls %+v", u.cancels)
			}
		})
	}
	t.Run("another device's job", func(t *testing.T) {
		env, u := newUpdatesEnv(t)
		j, _ := fwupdate.NewJob("job-1", "dev-a", fwupdate.ImageRef{ID: "img-1"}, fwupdate.MethodAuto, fwupdate.DefaultPolicy(), "", testNow)
		u.add(j)
		wantError(t, env.do(t, http.MethodPost, "/api/v1/devices/dev-b/updates/job-1/cancel", ""), 404, codeNotFound)
		if len(u.cancels) != 0 || u.jobs["job-1"].State != fwupdate.StateQueued {
			t.Fatalf("the job of dev-a was cancelled through dev-b")
		}
	})
}

func TestUpdatesWithoutDriver(t *testing.T) {
	env := newTestEnv(t, Config{})
	for _, rq := range []struct{ method, target, body string }{
		{http.MethodPost, "/api/v1/devices/dev-a/updates", `{"image_id":"a"}`},
		{http.MethodGet, "/api/v1/devices/dev-a/updates", ""},
		{http.MethodGet, "/api/v1/devices/dev-a/updates/job-1", ""},
		{http.MethodPost, "/api/v1/devices/dev-a/updates/job-1/cancel", ""},
	} {
		t.Run(rq.method+" "+rq.target, func(t *testing.T) {
			msg := wantError(t, env.do(t, rq.method, rq.target, rq.body, jsonCT...), 404, codeNotFound)
			if msg != "this server runs no firmware updates" {
				t.Fatalf("message %q", msg)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Minute: "1m", time.Hour: "1h", 90 * time.Minute: "1h30m", 70 * time.Second: "1m10s",
		10 * time.Minute: "10m", time.Hour + 30*time.Second: "1h0m30s", 500 * time.Millisecond: "500ms", 100 * time.Hour: "100h",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("%q parses to %v, %v", want, back, err)
		}
	}
}
