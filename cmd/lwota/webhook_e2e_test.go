package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/webhooks"
)

// lwotaProcess is `lwota serve` in a process of its own (this test binary acting as the command,
// see readmeCLIEnv), so that a test can kill it with SIGKILL: nothing runs at exit.
type lwotaProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedWriter
	http string // 127.0.0.1:PORT
	coap string
}

var readyLine = regexp.MustCompile(`msg="lwota ready" coap=(\S+) coaps=\S+ http=(\S+)`)

// startLwotaProcess starts lwota serve with args and waits for its "lwota ready" line.
func startLwotaProcess(t *testing.T, log *lockedWriter, args ...string) *lwotaProcess {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"serve", "--admin-token", testAdminToken, "--allow-nosec", "--coaps-addr", ""}, args...)...)
	cmd.Env = append(os.Environ(), readmeCLIEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lwotaProcess{cmd: cmd, done: make(chan struct{}), log: log}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(log, line)
			if m := readyLine.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case a := <-ready:
		p.coap, p.http = a[0], a[1]
	case <-p.done:
		t.Fatalf("lwota exited before it was ready:\n%s", log.String())
	case <-time.After(time.Minute):
		t.Fatalf("lwota not ready after a minute:\n%s", log.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone; safe to call twice.
func (p *lwotaProcess) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Error("lwota did not exit after SIGKILL")
	}
}

// String returns what was logged so far.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.w.(*bytes.Buffer); ok {
		return b.String()
	}
	return ""
}

// hookReceiver is the subscriber's side: it checks every request's signature, answers 500
// during its outage, and keeps each delivery once by its id.
type hookReceiver struct {
	secret string

	mu           sync.Mutex
	outageFrom   time.Time // zero: no outage yet
	outage       time.Duration
	first500     time.Time
	last500      time.Time
	refused      int
	bad          []string // requests whose signature or shape is wrong
	posts        int
	got          map[string]webhooks.Body // by delivery id
	firstJobSeen chan struct{}
	onceFirstJob sync.Once
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.posts++
	if err := webhooks.Verify(h.secret, r.Header.Get(webhooks.HeaderTimestamp), r.Header.Get(webhooks.HeaderSignature), body, now, 5*time.Minute); err != nil {
		h.bad = append(h.bad, fmt.Sprintf("%v: %s", err, body))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b webhooks.Body
	if err := json.Unmarshal(body, &b); err != nil || b.ID == "" || b.ID != r.Header.Get(webhooks.HeaderDelivery) ||
		b.Type != r.Header.Get(webhooks.HeaderEvent) {
		h.bad = append(h.bad, fmt.Sprintf("shape (%v): %s %s", err, r.Header, body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if !h.outageFrom.IsZero() && now.Before(h.outageFrom.Add(h.outage)) {
		if h.first500.IsZero() {
			h.first500 = now
		}
		h.last500 = now
		h.refused++
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	if _, dup := h.got[b.ID]; !dup {
		h.got[b.ID] = b
	}
	if b.Kind == "update_job" {
		h.onceFirstJob.Do(func() { close(h.firstJobSeen) })
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) startOutage(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outageFrom, h.outage = time.Now(), d
}

// The acceptance: a receiver gets every job transition of a 100-device campaign exactly
// once after deduplication by delivery id, each with a valid signature, although it answers 500
// for 30 s during the campaign and lwota is killed with SIGKILL (and started again) meanwhile.
func TestWebhookAcceptance(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	if testing.Short() {
		t.Skip("webhook acceptance: -short")
	}
	const outage = 30 * time.Second
	rx := &hookReceiver{secret: "e2e-webhook-secret-0123456789", got: map[string]webhooks.Body{}, firstJobSeen: make(chan struct{})}
	srv := httptest.NewServer(rx)
	defer srv.Close()

	dataDir := t.TempDir()
	log := &lockedWriter{w: &bytes.Buffer{}}
	// A fixed node name: the restarted process takes the campaign and webhook leases at once
	// instead of waiting for the killed one's to expire. Backoff up to 2 s: after the outage,
	// every delivery is tried again within seconds.
	args := []string{"--allow-unsigned", "--data-dir", dataDir, "--node-name", "webhook-e2e",
		"--update-poll", "2s", "--coap-ack-timeout", "1s", "--campaign-tick", "200ms",
		"--webhook-backoff", "200ms", "--webhook-backoff-max", "2s", "--webhook-max-attempts", "1000"}
	p := startLwotaProcess(t, log, append(args, "--http-addr", "127.0.0.1:0", "--coap-addr", "127.0.0.1:0")...)
	ts := &testService{base: "http://" + p.http, coap: p.coap}
	defer func() {
		if t.Failed() {
			t.Logf("lwota's log:\n%s", log.String())
		}
	}()

	var sub struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if code := ts.apiCall(t, "POST", "/api/v1/webhooks", map[string]any{
		"url": srv.URL + "/lwota", "kinds": []string{"update_job", "campaign"}, "secret": rx.secret,
	}, &sub); code != 201 || sub.Secret != rx.secret {
		t.Fatalf("create webhook: %d %+v", code, sub)
	}

	img := uploadImage(t, ts, "7.0.0", fwImage("7.0.0", 32<<10))
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.BytesPerSecond = 4 << 10 // eight seconds a download: the kill lands mid-transfer
	cfg.Lifetime = 30 * time.Second     // Updates every ~15 s find the socket the kill broke
	fleet := startFleet(t, ts, "hook", 100, cfg)
	devs := fleet.Devices()
	waitModelsAPI(t, ts, devs)

	var c campaignJSON
	if code := ts.apiCall(t, "POST", "/api/v1/campaigns", map[string]any{
		"name": "webhooks", "image_id": img, "selector": map[string]any{"query": `endpoint ^= "hook-"`},
		"waves": []map[string]any{{"percent": 100}},
		// 20 downloads at a time, each at least 8 s long: the campaign lasts well over 40 s, so
		// the 30 s outage falls inside it.
		"pacing": map[string]any{"max_concurrent": 20},
		"policy": map[string]any{"max_attempts": 3, "backoff": "1s", "min_link_rate": 512, "step_slack": "30s"},
		"start":  true,
	}, &c); code != 201 || c.Progress.Total != 100 {
		t.Fatalf("create campaign: %d %+v", code, c)
	}

	// The outage starts once deliveries flow, and lwota is killed a few seconds into it.
	select {
	case <-rx.firstJobSeen:
	case <-time.After(2 * time.Minute):
		t.Fatal("no job transition delivered")
	}
	rx.startOutage(outage)
	outageEnds := time.Now().Add(outage)
	waitFor(t, "a few refused deliveries", time.Minute, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return rx.refused >= 5
	})
	// Kill once the first devices have their image, with the others' downloads under way.
	waitFor(t, "the first devices updated", 2*time.Minute, func() bool {
		n := 0
		for _, d := range devs {
			n += int(d.Stats().ImagesReceived)
		}
		return n >= 10
	})
	mid := ts.campaign(t, c.ID)
	if mid.State != "running" {
		t.Fatalf("campaign %s before the kill; the test needs it running", mid.State)
	}
	p.kill(t)
	t.Logf("killed lwota with SIGKILL mid-campaign, %s into the outage: %+v", time.Since(outageEnds.Add(-outage)).Round(time.Second), mid.Progress.Counts)
	startLwotaProcess(t, log, append(args, "--http-addr", p.http, "--coap-addr", p.coap)...) // on the same ports; killed at cleanup

	c = ts.waitCampaign(t, c.ID, 3*time.Minute, func(c campaignJSON) bool {
		return c.State != "running" || time.Now().After(outageEnds)
	})
	if c.State != "running" {
		t.Fatalf("campaign %s %s before the outage ended, want it running throughout", c.State, time.Until(outageEnds).Round(time.Second))
	}
	c = ts.waitCampaign(t, c.ID, 3*time.Minute, func(c campaignJSON) bool { return c.State != "running" })
	t.Logf("campaign %s: %+v", c.State, c.Progress.Counts)

	// Every stored transition of every job, by delivery id: the state it went to.
	want := map[string]string{}
	for _, d := range devs {
		var list struct {
			Updates []struct {
				ID string `json:"id"`
			} `json:"updates"`
		}
		ep := url.PathEscape(d.Endpoint())
		if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates", nil, &list); code != 200 || len(list.Updates) == 0 {
			t.Fatalf("updates of %s: %d %+v", d.Endpoint(), code, list)
		}
		for _, u := range list.Updates {
			var detail struct {
				History []struct {
					Seq int    `json:"seq"`
					To  string `json:"to"`
				} `json:"history"`
			}
			if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates/"+u.ID, nil, &detail); code != 200 || len(detail.History) == 0 {
				t.Fatalf("update %s: %d %+v", u.ID, code, detail)
			}
			for _, h := range detail.History {
				want[fmt.Sprintf("%s.job.%s.%d", sub.ID, u.ID, h.Seq)] = h.To
			}
		}
	}
	// What the receiver has, deduplicated: every job transition and the campaign's end.
	snapshot := func() (got map[string]webhooks.Body, missing int, ended bool) {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		got = maps.Clone(rx.got)
		for id := range want {
			if _, ok := got[id]; !ok {
				missing++
			}
		}
		for _, b := range got {
			var data struct {
				To string `json:"to"`
			}
			_ = json.Unmarshal(b.Data, &data)
			ended = ended || (b.Kind == "campaign" && data.To == c.State)
		}
		return got, missing, ended
	}
	waitFor(t, "every job transition and the campaign's end delivered", 3*time.Minute, func() bool {
		_, missing, ended := snapshot()
		return missing == 0 && ended
	})

	got, _, _ := snapshot()
	rx.mu.Lock()
	bad, posts, refused, span := slices.Clone(rx.bad), rx.posts, rx.refused, rx.last500.Sub(rx.first500)
	rx.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d requests failed verification, e.g. %s", len(bad), bad[0])
	}
	var jobs int
	for id, b := range got {
		if b.Kind != "update_job" {
			continue
		}
		jobs++
		var data struct {
			To string `json:"to"`
		}
		if err := json.Unmarshal(b.Data, &data); err != nil {
			t.Fatal(err)
		}
		to, stored := want[id]
		if !stored || data.To != to {
			t.Fatalf("delivery %s (to %q) is not a stored transition (%q, %v)", id, data.To, to, stored)
		}
	}
	if jobs != len(want) {
		t.Fatalf("received %d distinct job deliveries, stored %d transitions", jobs, len(want))
	}
	if span < outage-5*time.Second {
		t.Fatalf("the receiver answered 500 for %s only, want about %s", span, outage)
	}
	var dead struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/webhooks/"+sub.ID+"/deliveries?state=dead", nil, &dead); code != 200 || len(dead.Deliveries) != 0 {
		t.Fatalf("dead letters: %d, %d", code, len(dead.Deliveries))
	}
	t.Logf("%d job transitions of %d devices delivered once each after dedup: %d requests, %d answered 500 over %s",
		len(want), len(devs), posts, refused, span.Round(time.Second))
}

// waitModelsAPI waits until lwota has read every device's model, through the API.
func waitModelsAPI(t *testing.T, ts *testService, devs []*lwm2mtest.Device) {
	t.Helper()
	next := 0
	waitFor(t, "every device's model read", 3*time.Minute, func() bool {
		for ; next < len(devs); next++ {
			var d struct {
				Model string `json:"model"`
			}
			if code := ts.apiCall(t, "GET", "/api/v1/devices/"+url.PathEscape(devs[next].Endpoint()), nil, &d); code != 200 || d.Model == "" {
				return false
			}
		}
		return true
	})
}
