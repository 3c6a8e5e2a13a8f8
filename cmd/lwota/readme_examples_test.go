package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// readmeCLIEnv makes the test binary act as the lwota command (TestMain), so that the README's
// shell examples run ./bin/lwota without a separate build.
const readmeCLIEnv = "LWOTA_README_CLI"

// runAsCLI is main for a test binary started with readmeCLIEnv set.
func runAsCLI() int {
	return runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
}

// readmeSections returns the ```sh blocks under each "## " heading of the README, in order.
func readmeSections(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var section string
	var block *strings.Builder
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case block != nil && strings.TrimSpace(line) == "```":
			out[section] = append(out[section], block.String())
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case line == "```sh":
			block = &strings.Builder{}
		}
	}
	return out
}

// TestREADMEUpdateExamples runs the README's firmware examples as written: the image, one
// device's update and the campaign, against a real lwota serve and the quick start's lwota sim.
// Only the token and the addresses are replaced.
func TestREADMEUpdateExamples(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	if testing.Short() {
		t.Skip("runs a whole rollout")
	}
	bash := sysdeps.Require(t, "bash")
	sysdeps.Require(t, "curl")
	sysdeps.Require(t, "jq")
	sysdeps.Require(t, "openssl")
	sections := readmeSections(t)

	ts := startService(t, t.TempDir(), "")
	host := strings.TrimPrefix(ts.base, "http://")

	// The quick start: its token lines, and its simulator, which runs in a terminal of its own.
	var preamble []string
	var simArgs []string
	for _, block := range sections["Two commands"] {
		for line := range strings.SplitSeq(block, "\n") {
			code, _, _ := strings.Cut(line, "#")
			switch f := strings.Fields(code); {
			case len(f) > 0 && strings.HasPrefix(f[0], "export") && strings.Contains(code, "LWOTA_TOKEN="):
				preamble = append(preamble, "export LWOTA_TOKEN="+testAdminToken)
			case strings.HasPrefix(code, "AUTH="):
				preamble = append(preamble, code)
			case len(f) > 1 && f[0] == "./bin/lwota" && f[1] == "sim":
				simArgs = f[1:]
			}
		}
	}
	if len(preamble) != 2 || simArgs == nil {
		t.Fatalf("the quick start lacks its token lines or its lwota sim line: %q %q", preamble, simArgs)
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	var simLog bytes.Buffer
	simOut := &lockedWriter{w: &simLog}
	go func() { simDone <- run(simCtx, append(simArgs, "--server", ts.coap), io.Discard, simOut) }()
	t.Cleanup(func() {
		stopSim()
		<-simDone
	})
	// The examples use these devices; their model is read in the background after they register.
	// (A device whose model is not known yet is neither selected by model nor given an image built
	// for one.)
	for _, ep := range []string{"sim-000007", "sim-000008", "sim-000009", "sim-000020", "sim-000021", "sim-000022",
		"sim-000023", "sim-000024", "sim-000025", "sim-000026", "sim-000027", "sim-000028", "sim-000029"} {
		waitFor(t, ep+"'s model", 2*time.Minute, func() bool {
			var d struct {
				Model string `json:"model"`
			}
			return ts.apiCall(t, "GET", "/api/v1/devices/"+ep, nil, &d) == 200 && d.Model == "lwota-sim"
		})
	}

	// Events of the whole run, to check that update jobs and campaigns reach the stream.
	evCtx, stopEvents := context.WithCancel(context.Background())
	defer stopEvents()
	evs := ts.sseEvents(t, evCtx, "?kind=update_job,campaign")

	var script strings.Builder
	script.WriteString("set -euo pipefail\n" + strings.Join(preamble, "\n") + "\n")
	for _, name := range []string{"Firmware images", "Updating one device", "Campaigns"} {
		if len(sections[name]) == 0 {
			t.Fatalf("README section %q has no sh example", name)
		}
		for _, block := range sections[name] {
			script.WriteString(strings.ReplaceAll(block, "localhost:8080", host))
		}
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", readmeCLIEnv, self)
	if err := os.WriteFile(filepath.Join(dir, "bin", "lwota"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LWOTA_SERVER="+ts.base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		simOut.mu.Lock()
		defer simOut.mu.Unlock()
		t.Fatalf("the README's examples failed: %v\n%s\nsimulator:\n%s", err, out, simLog.String())
	}

	t.Logf("the examples printed:\n%s", out)

	// What the examples should have done.
	jobState := func(ep string) string {
		var l struct {
			Updates []struct {
				State string `json:"state"`
			} `json:"updates"`
		}
		ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates", nil, &l)
		if len(l.Updates) == 0 {
			return ""
		}
		return l.Updates[0].State
	}
	if s := jobState("sim-000007"); s != "succeeded" {
		t.Errorf("sim-000007's update %q, want succeeded\n%s", s, out)
	}
	// The cancel races the push it cancels: either it won, or the push had already succeeded (the
	// example accepts exit status 4, 409 job_ended, for that case).
	end8 := jobState("sim-000008")
	if end8 != "cancelled" && end8 != "succeeded" {
		t.Errorf("sim-000008's update %q, want cancelled (or succeeded before the cancel)\n%s", end8, out)
	}
	waitFor(t, "sim-000009's update by curl", 2*time.Minute, func() bool { return jobState("sim-000009") == "succeeded" })
	cmp := regexp.MustCompile(`campaign (cmp_[a-z0-9]+) `).FindSubmatch(out)
	if cmp == nil {
		t.Fatalf("no campaign in the output of campaign watch:\n%s", out)
	}
	var c struct {
		State    string `json:"state"`
		Progress struct {
			Counts struct {
				Succeeded int `json:"succeeded"`
			} `json:"counts"`
		} `json:"progress"`
	}
	ts.apiCall(t, "GET", "/api/v1/campaigns/"+string(cmp[1]), nil, &c)
	if c.State != "completed" || c.Progress.Counts.Succeeded != 10 {
		t.Errorf("campaign %s: %+v, want completed with 10 devices updated\n%s", cmp[1], c, out)
	}

	// The same version again is refused, whatever the bytes; an admin may reinstall it, audited.
	again := exec.CommandContext(ctx, filepath.Join(dir, "bin", "lwota"), "image", "push", "--file", "fw.bin", "--sig", "fw.bin.sig",
		"--version", "1.4.2", "--model", "lwota-sim")
	again.Dir, again.Env = dir, append(os.Environ(), "LWOTA_SERVER="+ts.base, "LWOTA_TOKEN="+testAdminToken)
	if b, err := again.CombinedOutput(); err == nil || !strings.Contains(string(b), "409 duplicate_version") {
		t.Errorf("a second push of 1.4.2: %v\n%s", err, b)
	}
	var imgs struct {
		Images []struct {
			ID string `json:"id"`
		} `json:"images"`
	}
	if ts.apiCall(t, "GET", "/api/v1/images?model=lwota-sim", nil, &imgs); len(imgs.Images) != 1 {
		t.Fatalf("images of lwota-sim: %+v", imgs)
	}
	if code := ts.apiCall(t, "POST", "/api/v1/devices/sim-000007/updates", map[string]any{"image_id": imgs.Images[0].ID, "force": true}, nil); code != 202 {
		t.Errorf("forced reinstall: %d, want 202", code)
	}
	var audit struct {
		Entries []struct {
			Status int               `json:"status"`
			Detail map[string]string `json:"detail"`
		} `json:"entries"`
	}
	ts.apiCall(t, "GET", "/api/v1/audit?action="+url.QueryEscape("POST /api/v1/devices/:endpoint/updates")+"&limit=1", nil, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Status != 202 || audit.Entries[0].Detail["force"] != "true,already_up_to_date" {
		t.Errorf("the forced update's audit entry: %+v", audit)
	}

	// The stream carried sim-000007's success, sim-000008's end (its cancel, or its success when the
	// push won the race, as a loaded CI machine once had it) and the campaign's completion.
	var sawJob, sawCancel, sawCampaign bool
	deadline := time.After(time.Minute)
	for !sawJob || !sawCancel || !sawCampaign {
		select {
		case ev := <-evs:
			data, _ := ev["data"].(map[string]any)
			switch {
			case ev["type"] == "update_job" && ev["endpoint"] == "sim-000007" && data["to"] == "succeeded":
				sawJob = true
			case ev["type"] == "update_job" && ev["endpoint"] == "sim-000008" && data["to"] == end8 &&
				(end8 == "succeeded" || data["reason"] == "wrong image"):
				sawCancel = true
			case ev["type"] == "campaign" && data["campaign_id"] == string(cmp[1]) && data["to"] == "completed":
				sawCampaign = true
			case ev["type"] != "update_job" && ev["type"] != "campaign":
				t.Fatalf("?kind=update_job,campaign streamed %v", ev)
			}
		case <-deadline:
			t.Fatalf("event stream: job succeeded %v, job %s %v, campaign completed %v", sawJob, end8, sawCancel, sawCampaign)
		}
	}
}
