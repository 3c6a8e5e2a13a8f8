package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lwota/lwota/server/apitoken"
)

// TestEventStreamLimits: streams up to the per-token cap are served and the next one of that
// token is 429 too_many_streams; the server-wide cap refuses a third token's stream too. Once the
// clients close, the slots come back and the goroutines end.
func TestEventStreamLimits(t *testing.T) {
	env := newTestEnv(t, Config{KeepAlive: time.Hour, MaxStreams: 4, MaxStreamsPerToken: 2})
	reg := prometheus.NewRegistry()
	env.api.WithMetrics(reg)
	srv := httptest.NewServer(env.api.Handler())
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	t.Cleanup(client.CloseIdleConnections)

	// Let the test server and client settle before taking the baseline.
	client.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	var cancels []context.CancelFunc
	open := func(role apitoken.Role) *http.Response {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", bearer(env.auth.secrets[role]))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || line != ": connected\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
		}
		return resp
	}
	closeAll := func() {
		for _, c := range cancels {
			c()
		}
		cancels = nil
	}
	t.Cleanup(closeAll)
	want := func(resp *http.Response, status int, code string) {
		t.Helper()
		if status == http.StatusOK {
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			return
		}
		if resp.StatusCode != status {
			t.Fatalf("status %d, want %d", resp.StatusCode, status)
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		wantError(t, response{status: resp.StatusCode, header: resp.Header, body: body[:n]}, status, code)
	}

	want(open(apitoken.RoleAdmin), 200, "")
	want(open(apitoken.RoleAdmin), 200, "")
	want(open(apitoken.RoleAdmin), http.StatusTooManyRequests, codeTooManyStreams) // per token
	want(open(apitoken.RoleSupport), 200, "")
	want(open(apitoken.RoleSupport), 200, "")
	want(open(apitoken.RoleRelease), http.StatusTooManyRequests, codeTooManyStreams) // overall

	if got := metricValue(t, env.api.openGauge); got != 4 {
		t.Fatalf("lwota_api_event_streams = %v, want 4", got)
	}
	if got := metricValue(t, env.api.limits.WithLabelValues("event_streams")); got != 2 {
		t.Fatalf("event_streams refusals = %v, want 2", got)
	}

	closeAll()
	client.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for env.api.streams.open() != 0 || runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("after closing: %d streams open, %d goroutines, baseline %d", env.api.streams.open(), runtime.NumGoroutine(), baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The slots are free again.
	want(open(apitoken.RoleRelease), 200, "")
}

// metricValue reads a gauge's or counter's value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
