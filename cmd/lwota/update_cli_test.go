package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/api"
	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/fwupdate"
)

// cliUpdates is a fake firmware update driver behind the real API handler. Each Job call moves the
// job along script, one entry per call, so that --wait sees a job progress without any clock.
type cliUpdates struct {
	mu      sync.Mutex
	jobs    map[string]*fwupdate.Job
	history map[string][]fwupdate.Transition
	starts  []fwupdate.StartRequest
	cancels []string // reasons
	script  [][]scriptStep
	polls   int
	busy    int // Job answers ErrNotRunning this many times first
	now     time.Time
}

type scriptStep struct {
	to     fwupdate.State
	reason string
	retry  bool // a failure with a retry scheduled
}

func newCLIUpdates() *cliUpdates {
	return &cliUpdates{jobs: map[string]*fwupdate.Job{}, history: map[string][]fwupdate.Transition{},
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (u *cliUpdates) Start(_ context.Context, endpoint string, req fwupdate.StartRequest) (*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.starts = append(u.starts, req)
	if req.ImageID != "img-1" {
		return nil, fwupdate.ErrImageNotFound
	}
	p := fwupdate.DefaultPolicy()
	if req.Policy != nil {
		p = *req.Policy
	}
	j, tr := fwupdate.NewJob(fmt.Sprintf("job-%d", len(u.starts)), endpoint,
		fwupdate.ImageRef{ID: req.ImageID, Version: "1.4.2", Size: 4096}, req.Method, p, "", u.now)
	u.jobs[j.ID], u.history[j.ID] = j, []fwupdate.Transition{tr}
	return j.Clone(), nil
}

func (u *cliUpdates) Jobs(_ context.Context, endpoint string, limit int) ([]*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*fwupdate.Job
	for i := len(u.jobs); i >= 1 && len(out) < limit; i-- {
		if j := u.jobs[fmt.Sprintf("job-%d", i)]; j != nil && j.Endpoint == endpoint {
			out = append(out, j.Clone())
		}
	}
	return out, nil
}

func (u *cliUpdates) Job(_ context.Context, id string) (*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy > 0 {
		u.busy--
		return nil, fwupdate.ErrNotRunning
	}
	j, ok := u.jobs[id]
	if !ok {
		return nil, fwupdate.ErrJobNotFound
	}
	if u.polls < len(u.script) {
		for _, s := range u.script[u.polls] {
			u.now = u.now.Add(time.Minute)
			if s.to == fwupdate.StateDelivering {
				j.Delivery, j.DeviceState = fwupdate.DeliveryCoAP, 1
			}
			tr, err := j.Apply(s.to, u.now, s.reason)
			if err != nil {
				return nil, err
			}
			if s.retry {
				j.NextAttemptAt = u.now
			}
			u.history[id] = append(u.history[id], tr)
		}
	}
	u.polls++
	return j.Clone(), nil
}

func (u *cliUpdates) History(_ context.Context, id string) ([]fwupdate.Transition, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]fwupdate.Transition(nil), u.history[id]...), nil
}

func (u *cliUpdates) Cancel(_ context.Context, id, reason string) (*fwupdate.Job, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cancels = append(u.cancels, reason)
	j, ok := u.jobs[id]
	if !ok {
		return nil, fwupdate.ErrJobNotFound
	}
	tr, err := j.Apply(fwupdate.StateCancelled, u.now, reason)
	if err != nil {
		return nil, err
	}
	u.history[id] = append(u.history[id], tr)
	return j.Clone(), nil
}

// releaseTokens takes every secret for a token of the release role, the role that starts and cancels
// updates; the API's auth has tests of its own.
type releaseTokens struct{}

func (releaseTokens) Authenticate(context.Context, string) (*apitoken.Token, error) {
	return &apitoken.Token{ID: "tok-1", Name: "release-bot", Role: apitoken.RoleRelease}, nil
}

func (releaseTokens) Create(context.Context, string, apitoken.Role, string) (*apitoken.Token, string, error) {
	return nil, "", errors.New("not used")
}

func (releaseTokens) List(context.Context) ([]*apitoken.Token, error) {
	return nil, errors.New("not used")
}

func (releaseTokens) Revoke(context.Context, string) (*apitoken.Token, error) {
	return nil, errors.New("not used")
}

type discardAudit struct{}

func (discardAudit) Record(context.Context, audit.Entry) error { return nil }

func (discardAudit) List(context.Context, audit.Filter) ([]*audit.Entry, error) { return nil, nil }

// updateServer runs the real API handler over a cliUpdates on loopback, recording each request's
// headers. A request without a token gets one, so that tests need not repeat --token.
type updateServer struct {
	*httptest.Server
	u       *cliUpdates
	mu      sync.Mutex
	headers []http.Header
}

func newUpdateServer(t *testing.T) *updateServer {
	t.Helper()
	s := &updateServer{u: newCLIUpdates()}
	h := api.New(api.Config{}, nil, nil, nil, nil, nil, nil).WithUpdates(s.u).WithAuth(releaseTokens{}, discardAudit{}).Handler()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer any")
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// runUpdate runs `lwota update args...` as main does, with env as the whole environment.
func runUpdate(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = updateCmd(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), err
}

func TestUpdateStartCommand(t *testing.T) {
	def := fwupdate.DefaultPolicy()
	for _, tt := range []struct {
		name string
		args []string // after update start --image img-1
		want fwupdate.StartRequest
	}{
		{"server defaults", []string{"dev-a"}, fwupdate.StartRequest{ImageID: "img-1", Method: "auto"}},
		{"policy flags", []string{"dev-a", "--method", "push", "--strict", "--max-attempts", "5", "--block-size", "256"},
			fwupdate.StartRequest{ImageID: "img-1", Method: "push", Policy: &fwupdate.Policy{MaxAttempts: 5, BackoffBase: def.BackoffBase,
				BackoffMax: def.BackoffMax, Strict: true, MinLinkRate: def.MinLinkRate, StepSlack: def.StepSlack, BlockSize: 256}}},
		{"strict=false is sent", []string{"--strict=false", "dev-a", "--method", "pull"},
			fwupdate.StartRequest{ImageID: "img-1", Method: "pull", Policy: &def}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newUpdateServer(t)
			env := map[string]string{"LWOTA_SERVER": srv.URL, "LWOTA_TOKEN": "t0k", "LWOTA_IMAGE": "img-9"}
			stdout, _, err := runUpdate(t, env, append([]string{"start", "--image", "img-1"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if len(srv.u.starts) != 1 || !reflect.DeepEqual(srv.u.starts[0], tt.want) {
				t.Fatalf("Start got %+v, want %+v", srv.u.starts, tt.want)
			}
			if want := "update job-1 of dev-a started: image img-1 (1.4.2), method " + tt.want.Method + ", queued\n"; stdout != want {
				t.Fatalf("stdout %q, want %q", stdout, want)
			}
			if got := srv.headers[0].Get("Authorization"); got != "Bearer t0k" {
				t.Fatalf("Authorization %q", got)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		srv := newUpdateServer(t)
		stdout, _, err := runUpdate(t, nil, "start", "urn:imei:1", "--image", "img-1", "--json", "--server", srv.URL)
		var j map[string]any
		if err != nil || json.Unmarshal([]byte(stdout), &j) != nil || j["id"] != "job-1" || j["endpoint"] != "urn:imei:1" {
			t.Fatalf("err %v, stdout %s", err, stdout)
		}
	})
}

func TestUpdateStartWait(t *testing.T) {
	srv := newUpdateServer(t)
	srv.u.script = [][]scriptStep{
		{}, // still queued
		{{to: fwupdate.StateDelivering}},
		{{to: fwupdate.StateFailed, reason: "connection lost during downloading process", retry: true}},
		{{to: fwupdate.StateQueued}, {to: fwupdate.StateDelivering}}, // two in one poll: both printed
		{{to: fwupdate.StateDownloaded}, {to: fwupdate.StateUpdating}},
		{{to: fwupdate.StateVerifying}},
		{{to: fwupdate.StateSucceeded}},
	}
	stdout, stderr, err := runUpdate(t, nil, "start", "dev-a", "--image", "img-1", "--wait", "--poll", "1ms", "--server", srv.URL)
	if err != nil {
		t.Fatalf("err %v\nstderr %s", err, stderr)
	}
	want := `update job-1 of dev-a started: image img-1 (1.4.2), method auto
2026-03-01T12:00:00Z  queued      attempt 1
2026-03-01T12:01:00Z  delivering  attempt 1
2026-03-01T12:02:00Z  failed      attempt 1: connection lost during downloading process
2026-03-01T12:03:00Z  queued      attempt 2
2026-03-01T12:04:00Z  delivering  attempt 2
2026-03-01T12:05:00Z  downloaded  attempt 2
2026-03-01T12:06:00Z  updating    attempt 2
2026-03-01T12:07:00Z  verifying   attempt 2
2026-03-01T12:08:00Z  succeeded   attempt 2
update job-1 of dev-a succeeded: dev-a runs 1.4.2
`
	if stdout != want {
		t.Fatalf("stdout\n%s\nwant\n%s", stdout, want)
	}
	if srv.u.polls != len(srv.u.script) {
		t.Fatalf("%d polls, want %d: the wait went on after the job ended", srv.u.polls, len(srv.u.script))
	}
}

func TestUpdateStartWaitFails(t *testing.T) {
	for _, tt := range []struct {
		name  string
		final scriptStep
		want  string
	}{
		{"failed", scriptStep{to: fwupdate.StateFailed, reason: "not enough flash memory"}, "update job-1 of dev-a failed: not enough flash memory"},
		{"cancelled", scriptStep{to: fwupdate.StateCancelled}, "update job-1 of dev-a cancelled: -"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newUpdateServer(t)
			srv.u.busy = 2 // the server restarts: 503 twice, then answers
			srv.u.script = [][]scriptStep{{{to: fwupdate.StateDelivering}}, {tt.final}}
			stdout, stderr, err := runUpdate(t, nil, "start", "dev-a", "--image", "img-1", "--wait", "--json", "--poll", "1ms", "--server", srv.URL)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			var j map[string]any
			if json.Unmarshal([]byte(stdout), &j) != nil || j["state"] != string(tt.final.to) || len(j["history"].([]any)) != 3 {
				t.Fatalf("stdout is not the final job:\n%s", stdout)
			}
			if !strings.Contains(stderr, "  delivering  attempt 1\n") || !strings.Contains(stderr, "  "+string(tt.final.to)) {
				t.Fatalf("stderr %q", stderr)
			}
		})
	}
}

func TestUpdateStatusCommand(t *testing.T) {
	srv := newUpdateServer(t)
	env := map[string]string{"LWOTA_SERVER": srv.URL}
	if stdout, _, err := runUpdate(t, env, "status", "dev-a"); err != nil || stdout != "no updates of dev-a\n" {
		t.Fatalf("empty: %v %q", err, stdout)
	}
	for range 2 {
		if _, _, err := runUpdate(t, env, "start", "dev-a", "--image", "img-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := runUpdate(t, env, "cancel", "dev-a", "job-1"); err != nil {
		t.Fatal(err)
	}
	srv.u.mu.Lock()
	srv.u.script, srv.u.polls = [][]scriptStep{{{to: fwupdate.StateDelivering}}}, 0 // the next Job call: job-2 delivers
	srv.u.jobs["job-2"].BytesDelivered = 1024
	srv.u.mu.Unlock()

	stdout, _, err := runUpdate(t, env, "status", "dev-a")
	want := `ID     STATE      ATTEMPT  IMAGE          PROGRESS  UPDATED               REASON
job-2  queued     1/3      img-1 (1.4.2)  25%       2026-03-01T12:00:00Z  
job-1  cancelled  1/3      img-1 (1.4.2)  0%        2026-03-01T12:00:00Z  
`
	if err != nil || stdout != want {
		t.Fatalf("list: %v\n%s\nwant\n%s", err, stdout, want)
	}
	stdout, _, err = runUpdate(t, env, "status", "dev-a", "--json", "--limit", "1")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 1 || list[0]["id"] != "job-2" {
		t.Fatalf("list --json: %v\n%s", err, stdout)
	}

	stdout, _, err = runUpdate(t, env, "status", "dev-a", "job-2")
	want = `update          job-2
device          dev-a
image           img-1 (1.4.2), 4096 bytes
method          auto, delivery coap
state           delivering
attempt         1 of 3
progress        25% (1024 of 4096 bytes)
device reports  downloading
from version    -
created         2026-03-01T12:00:00Z
updated         2026-03-01T12:01:00Z

SEQ  AT                    FROM    TO          ATTEMPT  REASON
1    2026-03-01T12:00:00Z  -       queued      1        
2    2026-03-01T12:01:00Z  queued  delivering  1        
`
	if err != nil || stdout != want {
		t.Fatalf("one: %v\n%s\nwant\n%s", err, stdout, want)
	}
	stdout, _, err = runUpdate(t, env, "status", "dev-a", "job-2", "--json")
	if err != nil || !strings.Contains(stdout, `"history": [`) {
		t.Fatalf("one --json: %v\n%s", err, stdout)
	}
	_, _, err = runUpdate(t, env, "status", "dev-b", "job-2")
	if err == nil || err.Error() != "update status dev-b job-2: server answered 404 not_found: update job-2 of device dev-b does not exist" {
		t.Fatalf("another device's job: %v", err)
	}
}

func TestUpdateCancelCommand(t *testing.T) {
	srv := newUpdateServer(t)
	env := map[string]string{"LWOTA_SERVER": srv.URL}
	if _, _, err := runUpdate(t, env, "start", "dev-a", "--image", "img-1"); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runUpdate(t, env, "cancel", "dev-a", "job-1", "--reason", "wrong image")
	if err != nil || stdout != "update job-1 of dev-a cancelled\n" || !reflect.DeepEqual(srv.u.cancels, []string{"wrong image"}) {
		t.Fatalf("cancel: %v %q, reasons %q", err, stdout, srv.u.cancels)
	}
	_, _, err = runUpdate(t, env, "cancel", "dev-a", "job-1")
	if err == nil || err.Error() != "update cancel dev-a job-1: server answered 409 job_ended: update job-1 of device dev-a has already ended" {
		t.Fatalf("cancel again: %v", err)
	}
	if h := srv.headers[len(srv.headers)-1]; h.Get("Content-Type") != "" {
		t.Fatalf("a cancel without reason sent Content-Type %q", h.Get("Content-Type"))
	}
}

func TestUpdateCommandErrors(t *testing.T) {
	srv := newUpdateServer(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"start", "--image", "img-1"}, "update start: give the device's endpoint name"},
		{[]string{"start", "dev-a"}, "update start: --image is required"},
		{[]string{"start", "dev-a", "dev-b", "--image", "img-1"}, `update start: unexpected argument "dev-b"`},
		{[]string{"start", "dev-a", "--image", "img-1", "--method", "ota"},
			`update start dev-a: server answered 400 invalid_request: method must be pull, push or auto, not "ota"`},
		{[]string{"start", "dev-a", "--image", "img-1", "--block-size", "100"},
			"update start dev-a: server answered 400 invalid_request: policy.block_size must be 0 or a power of two from 16 to 1024, not 100"},
		{[]string{"start", "dev-a", "--image", "img-9"}, "update start dev-a: server answered 422 image_not_found: image img-9 does not exist"},
		{[]string{"start", "dev-a", "--image", "img-1", "--wait", "--poll", "0s"}, "update start: --poll must be positive"},
		{[]string{"status"}, "update status: give the device's endpoint name, and a job id for one update"},
		{[]string{"status", "dev-a", "--limit", "0"}, "update status: --limit must be positive"},
		{[]string{"cancel", "dev-a"}, "update cancel: give the device's endpoint name and the job id"},
		{[]string{"cancel", "dev-a", "job-9"}, "update cancel dev-a job-9: server answered 404 not_found: update job-9 of device dev-a does not exist"},
		{[]string{}, "update: no command given"},
		{[]string{"frobnicate"}, `update: unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, _, err := runUpdate(t, map[string]string{"LWOTA_SERVER": srv.URL}, tt.args...)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if stdout != "" {
				t.Fatalf("stdout %q on failure", stdout)
			}
		})
	}
}

func TestUpdateCommandUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"update", "help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "lwota update [command]") {
		t.Fatalf("update help: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "\n  update  ") {
		t.Fatalf("lwota help does not list update: %q", out.String())
	}
}
