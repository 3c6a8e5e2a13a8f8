package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/freeport"

	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// testService is an in-process `lwota serve` on loopback ports chosen by the kernel.
type testService struct {
	svc    *service
	base   string // http://127.0.0.1:PORT
	coap   string // 127.0.0.1:PORT
	stop   context.CancelFunc
	done   chan error
	logBuf *lockedWriter // the service's log
}

// testAdminToken is the --admin-token of every test service; apiCall, sseEvents and cli send it.
const testAdminToken = "lwota_test-admin-token-0123456789abcdefghij"

// startService runs lwota on dataDir (and dsn when not empty) until the test ends or stop is called.
func startService(t *testing.T, dataDir, dsn string, extra ...string) *testService {
	t.Helper()
	return startServiceWith(t, dataDir, dsn, nil, extra...)
}

// startServiceWith is startService with tweak applied to the parsed configuration, for knobs
// no flag has (a tiny download token TTL, an HTTP listener opened beforehand); nil changes nothing.
func startServiceWith(t *testing.T, dataDir, dsn string, tweak func(*serveConfig), extra ...string) *testService {
	t.Helper()
	args := append([]string{"--admin-token", testAdminToken, "--coap-addr", "127.0.0.1:0", "--coaps-addr", "127.0.0.1:0", "--allow-nosec", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	cfg, err := parseServeFlags(args, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	logBuf := &lockedWriter{w: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := newService(ctx, cfg, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ts := &testService{svc: svc, stop: cancel, done: make(chan error, 1), logBuf: logBuf}
	go func() { ts.done <- svc.Run(ctx) }()
	select {
	case <-svc.ready:
	case err := <-ts.done:
		cancel()
		t.Fatalf("service ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("service not ready after 30s")
	}
	ts.base = "http://" + svc.httpLn.Addr().String()
	ts.coap = svc.core.Addr().String()
	t.Cleanup(func() { ts.shutdown(t) })
	return ts
}

// shutdown stops the service and waits for it; safe to call twice.
func (ts *testService) shutdown(t *testing.T) {
	t.Helper()
	if ts.stop == nil {
		return
	}
	ts.stop()
	ts.stop = nil
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("service stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("service did not stop within 30s")
	}
}

// apiCall does one REST call and decodes the JSON answer into out (when out is not nil).
func (ts *testService) apiCall(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes; it is for state that another
// process or goroutine changes, never a substitute for a ready signal we own.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sseEvents reads server-sent events from the API until ctx ends.
func (ts *testService) sseEvents(t *testing.T, ctx context.Context, query string) <-chan map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.base+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d", resp.StatusCode)
	}
	out := make(chan map[string]any, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data:"); ok {
				var ev map[string]any
				if json.Unmarshal([]byte(strings.TrimSpace(data)), &ev) == nil {
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out
}

// Parallel tests: this package's end-to-end tests are most of `make test`'s wall time, and many
// of them spend it waiting (lwota's poll and retry timers, libcoap's -B timeouts, a device's
// lifetime, a process restart) rather than computing. Those call t.Parallel(), so go test runs
// them -parallel (GOMAXPROCS) at a time after every serial test has finished. A test may be
// parallel only if it shares nothing that another test changes: its own service on ports the
// kernel picks, its own t.TempDir(), its own database or bucket (pgtest, s3test hand out a new
// one per call), and no t.Setenv. These stay serial: tests that read process-wide figures (heap,
// goroutines, GC percent: flood, gcheadroom, images), that stop the shared S3 server (images) or
// set environment variables (s3test's Setenv, the bench tests), the large fleets whose timings
// are tuned for one test at a time (TestUpdateFleet, TestCampaignFleet, TestUpdateSurvivesRestart,
// TestServiceEndToEnd: its 1,000 devices missed their one minute for the info reads beside
// another test at load 15; its ~6,000 goroutines also near -race's limit of 8,128 with
// another fleet) and the console tests, where Chromium keeps a core busy on its own.
func TestMain(m *testing.M) {
	if os.Getenv(readmeCLIEnv) == "1" {
		os.Exit(runAsCLI()) // the README's ./bin/lwota (readme_examples_test.go)
	}
	// bench pull starts its devices as `<os.Executable()> bench pull-clients`, which in a test
	// is this binary: whichever test ran the bench, the child must act as lwota, not run the
	// whole suite again (and start children of its own). Its environment marks it.
	if _, child := os.LookupEnv(pullCertEnv); child {
		os.Exit(runAsCLI())
	}
	code := m.Run()
	// Stop the throwaway PostgreSQL cluster and S3 server, if a test started them.
	pgtest.Stop()
	s3test.Shutdown()
	os.Exit(code)
}

// diagnostics describes a service whose test is failing: its counters that are not zero (the
// registrations displaced, the CoAP drops and retransmissions, the update jobs' outcomes) and
// the last lines of its log.
func (ts *testService) diagnostics() string {
	var b strings.Builder
	req, err := http.NewRequest("GET", ts.base+"/metrics", nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			b.WriteString("counters not zero:\n")
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(line, "lwota_") && !strings.Contains(line, "_bucket{") &&
					!strings.HasSuffix(line, " 0") {
					b.WriteString("  " + line + "\n")
				}
			}
		}
	}
	if err != nil {
		fmt.Fprintf(&b, "metrics: %v\n", err)
	}
	ts.logBuf.mu.Lock()
	var lines []string
	if buf, ok := ts.logBuf.w.(*bytes.Buffer); ok {
		lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	ts.logBuf.mu.Unlock()
	b.WriteString("log, last lines:\n")
	for _, l := range lines[max(0, len(lines)-40):] {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// lockedWriter lets the service's goroutines log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freeUDPBelowEphemeral returns a loopback UDP address nobody listens on now, below the
// kernel's ephemeral port range, for a service that must come back on the same CoAP port after
// a restart. A port from that range, freed by the shutdown, can meanwhile be handed to any
// socket bound to port 0 on this busy machine (seen: "bind: address already in use" at
// TestServiceEndToEnd's restart); nothing takes a port below the range unless asked for it by
// number. (cmd/lwota/clustere2e picks its nodes' ports with freeport too.)
func freeUDPBelowEphemeral(t *testing.T) string {
	t.Helper()
	addr, err := freeport.UDP()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
