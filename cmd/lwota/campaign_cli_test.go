package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/api"
)

func noEnv(string) string { return "" }

func TestCampaignCLICreateFlags(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(spec, []byte(`{"name": "f", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 12.5}, {"percent": 100}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string // the body as JSON
		err  string
	}{
		{name: "the common fields",
			args: []string{"--name", "eu", "--image", "img-1", "--query", `labels.region = "eu"`, "--waves", "2%, 20%,100%",
				"--threshold", "10", "--min-devices", "5", "--max-concurrent", "100", "--start"},
			want: `{"name": "eu", "image_id": "img-1", "selector": {"query": "labels.region = \"eu\""},
				"waves": [{"percent": 2}, {"percent": 20}, {"percent": 100}],
				"failure_threshold": {"percent": 10, "min_devices": 5, "action": "pause"},
				"pacing": {"max_concurrent": 100, "max_starts_per_minute": 0}, "start": true, "dry_run": false}`},
		{name: "endpoints, counts, abort, dry run",
			args: []string{"--name", "few", "--image", "img-1", "--endpoints", "a, b,c", "--waves", "1,100%", "--threshold", "50",
				"--action", "abort", "--method", "push", "--spread-by", "cell", "--max-starts-per-minute", "6", "--dry-run"},
			want: `{"name": "few", "image_id": "img-1", "selector": {"endpoints": ["a", "b", "c"]}, "waves": [{"count": 1}, {"percent": 100}],
				"method": "push", "spread_by": "cell", "failure_threshold": {"percent": 50, "min_devices": 0, "action": "abort"},
				"pacing": {"max_concurrent": 0, "max_starts_per_minute": 6}, "start": false, "dry_run": true}`},
		{name: "one wave by default",
			args: []string{"--name", "all", "--image", "img-1", "--query", "online"},
			want: `{"name": "all", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 100}], "start": false, "dry_run": false}`},
		{name: "a file, started",
			args: []string{"--file", spec, "--start"},
			want: `{"name": "f", "image_id": "img-1", "selector": {"query": "online"}, "waves": [{"percent": 12.5}, {"percent": 100}], "start": true}`},
		{name: "a file and a spec flag", args: []string{"--file", spec, "--name", "x"}, err: "--name and --file"},
		{name: "no name", args: []string{"--image", "img-1", "--query", "online"}, err: "--name and --image are required"},
		{name: "no devices", args: []string{"--name", "x", "--image", "img-1"}, err: "--query or with --endpoints"},
		{name: "both selectors", args: []string{"--name", "x", "--image", "img-1", "--query", "online", "--endpoints", "a"}, err: "one of them"},
		{name: "min devices alone", args: []string{"--name", "x", "--image", "img-1", "--query", "online", "--min-devices", "3"}, err: "go with --threshold"},
		{name: "bad wave", args: []string{"--name", "x", "--image", "img-1", "--query", "online", "--waves", "half,100%"}, err: `"half" is neither`},
		{name: "bad percent", args: []string{"--name", "x", "--image", "img-1", "--query", "online", "--waves", "x%"}, err: "not a percentage"},
		{name: "stray argument", args: []string{"--name", "x", "--image", "img-1", "--query", "online", "extra"}, err: `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseCreateCampaignFlags(tt.args, io.Discard, noEnv)
			var body map[string]any
			if err == nil {
				body, err = cfg.body()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one holding %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(body)
			var g, w any
			_ = json.Unmarshal(got, &g)
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// testCampaign is a campaign answer in the middle of its second wave.
const testCampaign = `{"id": "cmp_1", "name": "eu rollout", "image_id": "img-1", "image_version": "1.4.2",
	"selector": {"query": "model = \"X\""}, "waves": [{"count": 10}, {"percent": 100}],
	"state": "running", "reason": "", "wave": 2, "created_by": "admin", "created_at": "2026-03-01T12:00:00Z",
	"started_at": "2026-03-01T12:00:00Z",
	"progress": {"total": 100, "counts": {"pending": 40, "in_progress": 20, "succeeded": 30, "already_up_to_date": 2, "failed": 6, "cancelled": 2},
		"waves": [{"wave": 1, "size": 10, "counts": {"pending": 0, "in_progress": 0, "succeeded": 8, "already_up_to_date": 0, "failed": 2, "cancelled": 0}, "gate": "open"},
			{"wave": 2, "size": 90, "counts": {"pending": 40, "in_progress": 20, "succeeded": 22, "already_up_to_date": 2, "failed": 4, "cancelled": 2}, "gate": "running"}],
		"success_rate": 0.8, "failure_rate": 0.15, "throughput_per_minute": 4, "eta": "2026-03-01T12:25:00Z"},
	"failure_reasons": [{"reason": "integrity check failure", "count": 4}, {"reason": "out of flash", "count": 2}]}`

func TestCampaignCLIRender(t *testing.T) {
	c, err := parseCampaign([]byte(testCampaign))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC)
	got := renderCampaign(c, now, true, serverRate(c))
	want := `campaign cmp_1 "eu rollout", image 1.4.2
state     running, wave 2/2
devices   100: 30 succeeded, 2 already up to date, 6 failed, 2 cancelled, 20 in progress, 40 pending
rate      success 80.0%, failure 15.0%, 4.0 devices/min, ETA 12:25:00 (in 15m0s)
  wave 1  [========================!!!!!!]    10/10    open
> wave 2  [========!x~~~~~~..............]    30/90    running
failures
      4  integrity check failure
      2  out of flash
`
	if got != want {
		t.Fatalf("render\n%s\nwant\n%s", got, want)
	}
	line := progressLine(c, now, serverRate(c))
	for _, part := range []string{"12:10:00", "running", "wave 2/2", "40/100 finished", "6 failed", "4.0/min", "ETA 12:25:00"} {
		if !strings.Contains(line, part) {
			t.Errorf("progress line %q lacks %q", line, part)
		}
	}
}

func TestCampaignCLIBar(t *testing.T) {
	for _, tt := range []struct {
		counts api.CampaignCounts
		size   int
		want   string
	}{
		{api.CampaignCounts{}, 0, "[" + strings.Repeat(" ", 30) + "]"},
		{api.CampaignCounts{Pending: 3}, 3, "[" + strings.Repeat(".", 30) + "]"},
		{api.CampaignCounts{Succeeded: 1, UpToDate: 1, Failed: 1}, 3, "[" + strings.Repeat("=", 20) + strings.Repeat("!", 10) + "]"},
		{api.CampaignCounts{Succeeded: 1, Pending: 2}, 3, "[" + strings.Repeat("=", 10) + strings.Repeat(".", 20) + "]"},
		{api.CampaignCounts{Failed: 1, Pending: 999}, 1000, "[" + strings.Repeat(".", 30) + "]"}, // below one cell
		{api.CampaignCounts{Cancelled: 1, InProgress: 1}, 2, "[" + strings.Repeat("x", 15) + strings.Repeat("~", 15) + "]"},
	} {
		if got := bar(tt.counts, tt.size); got != tt.want {
			t.Errorf("bar(%+v, %d) = %q, want %q", tt.counts, tt.size, got, tt.want)
		}
	}
}

// sseServer answers GET /api/v1/campaigns/cmp_1/events with one script per connection, then
// closes the stream.
type sseServer struct {
	mu      sync.Mutex
	scripts [][]string // each: events, written as they are
	conns   int
	status  int // when set, answered with an error body instead
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.conns
	s.conns++
	s.mu.Unlock()
	if r.URL.Path != "/api/v1/campaigns/cmp_1/events" || r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "wrong request "+r.URL.Path, http.StatusTeapot)
		return
	}
	if s.status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		fmt.Fprint(w, `{"error": {"code": "not_found", "message": "campaign cmp_1 does not exist"}}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if i >= len(s.scripts) {
		<-r.Context().Done() // nothing more to say: hold the stream
		return
	}
	fmt.Fprint(w, ": connected\n\n")
	for _, ev := range s.scripts[i] {
		fmt.Fprint(w, ev)
		w.(http.Flusher).Flush()
	}
}

func progressEvent(t *testing.T, state, reason string, succeeded int) string {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(testCampaign), &c); err != nil {
		t.Fatal(err)
	}
	c["state"], c["reason"] = state, reason
	c["progress"].(map[string]any)["counts"].(map[string]any)["succeeded"] = succeeded
	b, _ := json.Marshal(c)
	return "event: progress\ndata: " + string(b) + "\n\n"
}

func TestCampaignCLIWatch(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC) }
	state := func(from, to, reason string) string {
		return fmt.Sprintf("event: state\ndata: {\"id\":\"cmp_1\",\"from\":%q,\"to\":%q,\"reason\":%q,\"at\":\"2026-03-01T12:11:00Z\"}\n\n", from, to, reason)
	}
	for _, tt := range []struct {
		name    string
		srv     *sseServer
		live    bool
		state   string // the campaign's state at the end
		err     string
		conns   int
		contain []string
		lines   int // plain output lines
	}{
		{name: "until completed",
			srv: &sseServer{scripts: [][]string{{progressEvent(t, "running", "", 30), progressEvent(t, "running", "", 31),
				state("running", "completed", "every wave finished"), progressEvent(t, "completed", "every wave finished", 90)}}},
			state: "completed", conns: 1, lines: 4,
			contain: []string{"running -> completed: every wave finished", "completed  wave 2/2", "31 succeeded"}},
		{name: "reconnects after a dropped stream",
			srv: &sseServer{scripts: [][]string{{progressEvent(t, "running", "", 30)},
				{progressEvent(t, "aborted", "wave 2: too many failures", 30)}}},
			state: "aborted", conns: 2, lines: 3,
			contain: []string{"stream interrupted", "aborted  wave 2/2"}},
		{name: "live view redraws in place",
			srv: &sseServer{scripts: [][]string{{progressEvent(t, "running", "", 30), state("running", "failed", "blocked"),
				progressEvent(t, "failed", "wave 2: blocked", 30)}}},
			live: true, state: "failed", conns: 1,
			contain: []string{"\x1b[9A\r\x1b[J", "reason    wave 2: blocked", "> wave 2"}},
		{name: "an unknown campaign", srv: &sseServer{status: http.StatusNotFound}, err: "404 not_found: campaign cmp_1 does not exist", conns: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := httptest.NewServer(tt.srv)
			defer hs.Close()
			cl, err := newClient(hs.URL, "tok")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			c, err := watchCampaign(ctx, cl, "cmp_1", &out, watchConfig{live: tt.live, width: 200, now: now, retry: 10 * time.Millisecond})
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case c.State != tt.state:
				t.Fatalf("ended %s, want %s", c.State, tt.state)
			}
			tt.srv.mu.Lock()
			conns := tt.srv.conns
			tt.srv.mu.Unlock()
			if conns != tt.conns {
				t.Errorf("%d connections, want %d", conns, tt.conns)
			}
			for _, s := range tt.contain {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			if n := strings.Count(out.String(), "\n"); !tt.live && n != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tt.lines, out.String())
			}
		})
	}
}

// TestCampaignCLIActions: each action posts to its route with the body its flags make.
func TestCampaignCLIActions(t *testing.T) {
	type call struct {
		path string
		body string
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Method + " " + r.URL.RequestURI(), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/start") {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error": {"code": "invalid_transition", "message": "start campaign cmp_1: not allowed in this state: start a running campaign"}}`)
			return
		}
		fmt.Fprint(w, testCampaign)
	}))
	defer hs.Close()
	env := func(k string) string {
		return map[string]string{"LWOTA_SERVER": hs.URL, "LWOTA_TOKEN": "tok"}[k]
	}
	for _, tt := range []struct {
		args []string
		want call
		out  string
		err  string
	}{
		{args: []string{"pause", "cmp_1", "--reason", "lunch"}, want: call{"POST /api/v1/campaigns/cmp_1/pause", `{"reason":"lunch"}`}, out: "campaign cmp_1 running\n"},
		{args: []string{"abort", "--hard", "cmp_1"}, want: call{"POST /api/v1/campaigns/cmp_1/abort", `{"mode":"hard","reason":""}`}},
		{args: []string{"resume", "cmp_1", "--threshold", "20", "--min-devices", "10"},
			want: call{"POST /api/v1/campaigns/cmp_1/resume", `{"failure_threshold":{"action":"pause","min_devices":10,"percent":20}}`}},
		{args: []string{"resume", "cmp_1"}, want: call{"POST /api/v1/campaigns/cmp_1/resume", ``}},
		{args: []string{"approve", "cmp_1"}, want: call{"POST /api/v1/campaigns/cmp_1/approve", ``}},
		{args: []string{"retry", "cmp_1", "--json"}, want: call{"POST /api/v1/campaigns/cmp_1/retry", ``}, out: `"id": "cmp_1"`},
		{args: []string{"start", "cmp_1"}, want: call{"POST /api/v1/campaigns/cmp_1/start", ``}, err: "409 invalid_transition"},
		{args: []string{"list", "--state", "running,paused"}, want: call{"GET /api/v1/campaigns?state=running%2Cpaused", ``}, out: "no campaigns"},
		{args: []string{"devices", "cmp_1", "--state", "failed", "--limit", "5"}, want: call{"GET /api/v1/campaigns/cmp_1/devices?limit=5&state=failed", ``}},
		{args: []string{"show", "cmp_1"}, want: call{"GET /api/v1/campaigns/cmp_1", ``}, out: "> wave 2"},
		{args: []string{"create", "--name", "x", "--image", "img-1", "--query", "online", "--dry-run"},
			want: call{"POST /api/v1/campaigns", `{"dry_run":true,"image_id":"img-1","name":"x","selector":{"query":"online"},"start":false,"waves":[{"percent":100}]}`}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			var out bytes.Buffer
			err := campaignCmd(context.Background(), tt.args, &out, io.Discard, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
			} else if err != nil && !strings.HasPrefix(tt.args[0], "create") {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			// A short id ("cmp_1", "img-1") is first looked up as a prefix (idprefix.go).
			calls = slices.DeleteFunc(calls, func(c call) bool {
				return c.path == "GET /api/v1/campaigns" || c.path == "GET /api/v1/images?"
			})
			if len(calls) != 1 || calls[0] != tt.want {
				t.Fatalf("calls %q, want %q", calls, tt.want)
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Fatalf("output %q lacks %q", out.String(), tt.out)
			}
		})
	}
}
