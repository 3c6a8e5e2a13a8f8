package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// consoleCreateFleetSize is the fleet of the create-form test: issue 15's 200 devices.
const consoleCreateFleetSize = 200

// A release engineer creates a campaign in the console over 200 simulated devices: picks the
// image (its release notes beside the picker), types a selector and sees the live count, is
// shown a refusal next to its field, dry-runs, creates and starts; then pauses at the manual
// gate and reads what Resume will do, resumes, approves, and watches it complete. A tab opened
// afterwards draws the whole campaign from its history and lists who did what.
func TestConsoleCampaignCreate(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms", "--campaign-tick", "200ms")
	const notes = "Fixes the meter drift after a brown-out; needs 1.0.0 or later."
	body := fwImage("2.0.0", 8<<10)
	code, resp := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "meter-fw", "X-Lwota-Version": "2.0.0", "X-Lwota-Model": "sim-1",
		"X-Lwota-Release-Notes": notes}, bytes.NewReader(body), int64(len(body)))
	if code != 201 {
		t.Fatalf("upload: %d %s", code, resp)
	}
	var img struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(resp), &img); err != nil || img.ID == "" {
		t.Fatalf("upload answer %s: %v", resp, err)
	}
	other := fwImage("3.0.0", 1<<10) // another model's image: not offered once the model is chosen
	if code, resp := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "tracker-fw", "X-Lwota-Version": "3.0.0", "X-Lwota-Model": "tracker-9"},
		bytes.NewReader(other), int64(len(other))); code != 201 {
		t.Fatalf("upload for another model: %d %s", code, resp)
	}
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.UpdateDelay = 200 * time.Millisecond
	startNamedFleet(t, ts, consoleCreateFleetSize, cfg, func(i int) string { return fmt.Sprintf("new-%03d", i) })
	waitFor(t, "every device's model", time.Minute, func() bool {
		var l struct {
			Devices []json.RawMessage `json:"devices"`
		}
		ts.apiCall(t, "GET", "/api/v1/devices?prefix=new-&model=sim-1&limit=1000", nil, &l)
		return len(l.Devices) == consoleCreateFleetSize
	})

	b := newBrowser(t, ts)
	b.signIn(createToken(t, ts, "release-eng", "release"))
	b.open("#/campaigns")
	b.do("new campaign", chromedp.Click(chromedp.ID("new-campaign")))
	b.waitJS("the form", `document.querySelector("main").dataset.route === "#/campaigns/new" && !!document.getElementById("campaign-form")`, 30*time.Second)

	// The image, by model, with its release notes.
	b.do("choose the model", chromedp.SetValue(chromedp.ID("c-model"), "sim-1"))
	eval[chromedp.Void](b, `document.getElementById("c-model").dispatchEvent(new Event("change"))`)
	if n := eval[int](b, `document.querySelectorAll("#c-image option[value]:not([value=''])").length`); n != 1 {
		t.Fatalf("%d images offered for sim-1, want 1:\n%s", n, b.text("#c-image"))
	}
	b.do("choose the image", chromedp.SetValue(chromedp.ID("c-image"), img.ID))
	eval[chromedp.Void](b, `document.getElementById("c-image").dispatchEvent(new Event("change"))`)
	b.waitText("#release-notes", notes, 10*time.Second)

	// The selector: a bad one is refused where it was typed, a good one is counted.
	b.do("type a bad selector", chromedp.SendKeys(chromedp.ID("c-query"), `endpoint ^=`))
	b.waitText("#selector-error", "selector.query", 30*time.Second)
	if got := eval[string](b, `document.getElementById("c-query").getAttribute("aria-invalid") ?? ""`); got != "true" {
		t.Errorf("the bad selector is not marked invalid (%q)", got)
	}
	b.do("complete the selector", chromedp.SendKeys(chromedp.ID("c-query"), ` "new-"`))
	b.waitJS("the live count", `document.getElementById("match-number")?.textContent === "`+fmt.Sprint(consoleCreateFleetSize)+`"`, 30*time.Second)
	if got := b.text("#match-count"); !strings.Contains(got, "sim-1: 200") || strings.Contains(got, "refused") {
		t.Errorf("the live count says %q", got)
	}

	// A dry run without a name and with a window that never opens: the server's refusals land on
	// their fields; nothing is created.
	b.do("add a window", chromedp.Click(chromedp.ID("add-window")))
	b.do("a bad window", chromedp.SendKeys(chromedp.ID("win-cron-0"), "0 0 30 2 *"), chromedp.SendKeys(chromedp.ID("win-duration-0"), "24h"))
	b.do("dry run", chromedp.Click(chromedp.ID("dry-run-button")))
	b.waitJS("the name refused", `document.getElementById("c-name").getAttribute("aria-invalid") === "true"`, 30*time.Second)
	b.waitJS("the window refused", `document.getElementById("win-cron-0").getAttribute("aria-invalid") === "true"`, 10*time.Second)
	b.waitText("#form-errors", "refused", 10*time.Second)
	if got := b.text("#campaign-form"); !strings.Contains(got, "never fires within a year") {
		t.Errorf("the window's refusal is not shown:\n%s", got)
	}
	if !eval[bool](b, `document.getElementById("create-button").disabled`) {
		t.Error("create is possible before a successful dry run")
	}
	// A window open all day, every day: updates may start now.
	eval[chromedp.Void](b, `document.getElementById("win-cron-0").value = ""`)
	b.do("name it, fix the window", chromedp.SendKeys(chromedp.ID("c-name"), "meters to 2.0.0"),
		chromedp.SendKeys(chromedp.ID("win-cron-0"), "0 0 * * *"), chromedp.SendKeys(chromedp.ID("win-tz-0"), "UTC"),
		chromedp.SetValue(chromedp.ID("c-max-concurrent"), "40"), chromedp.Click(chromedp.ID("dry-run-button")))
	b.waitText("#dry-summary", "200 devices in 2 waves: wave 1 20, wave 2 180", 30*time.Second)
	var list struct {
		Campaigns []json.RawMessage `json:"campaigns"`
	}
	if ts.apiCall(t, "GET", "/api/v1/campaigns", nil, &list); len(list.Campaigns) != 0 {
		t.Fatalf("%d campaigns exist after dry runs, want none", len(list.Campaigns))
	}
	b.screenshot("campaign-new")

	// Create and start, confirmed: the campaign's page opens.
	b.waitJS("create enabled", `!document.getElementById("create-button").disabled`, 10*time.Second)
	b.do("create", chromedp.Click(chromedp.ID("create-button")))
	b.waitJS("the confirmation", `document.getElementById("confirm").open`, 10*time.Second)
	b.do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS("the campaign page", `/^#\/campaigns\/cmp_/.test(location.hash) && document.querySelector("main").dataset.route === location.hash`, 30*time.Second)
	page := eval[string](b, `location.hash`)
	id := strings.TrimPrefix(page, "#/campaigns/")

	// Wave 1 (10 % manual gate) finishes and waits. Paused there, the page says what Resume will do.
	b.waitText("main h1", "waiting for approval", 2*time.Minute)
	b.do("pause", chromedp.Click(chromedp.ID("action-pause")))
	b.waitText("#resume-effect", "Resume will wait for an operator to approve wave 2", 30*time.Second)
	b.do("resume", chromedp.Click(chromedp.ID("action-resume")))
	b.waitText("main h1", "waiting for approval", 30*time.Second)
	b.waitJS("the approve button", `!!document.getElementById("action-approve")`, 30*time.Second)
	b.do("approve", chromedp.Click(chromedp.ID("action-approve")))
	b.waitJS("the confirmation", `document.getElementById("confirm").open`, 10*time.Second)
	b.do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	counter := func(k string) string {
		return `Number(document.querySelector('#counters [data-count="` + k + `"] dd')?.textContent ?? -1)`
	}
	b.waitText("main h1", "completed", 3*time.Minute)
	b.waitJS("every device updated", counter("succeeded")+` === `+fmt.Sprint(consoleCreateFleetSize), 30*time.Second)

	// A tab opened now has seen nothing live: the chart's pending and in-progress areas come
	// from the history alone, and the history lists who did what.
	b2 := newBrowser(t, ts)
	b2.signIn(createToken(t, ts, "support-desk", "support"))
	b2.open(page)
	b2.waitJS("the chart from the history", `!!document.querySelector("#chart polygon.area-pending") && !!document.querySelector("#chart polygon.area-in_progress") && !!document.querySelector("#chart polygon.area-succeeded")`, 30*time.Second)
	b2.waitText("#campaign-event-list", "approved the next wave", 30*time.Second)
	events := b2.text("#campaign-event-list")
	for _, want := range []string{"release-eng", "created", "started", "paused", "resumed", "approved the next wave", "completed",
		"paused in the web console by release-eng", "lwota (by itself)"} {
		if !strings.Contains(events, want) {
			t.Errorf("who did what lacks %q:\n%s", want, events)
		}
	}
	if n := eval[int](b2, `document.querySelectorAll("main #campaign-actions button").length`); n != 0 {
		t.Errorf("support sees %d campaign actions", n)
	}
	b2.screenshot("campaign-history")

	// What the form sent is what the campaign holds.
	var got struct {
		Waves []struct {
			Percent float64 `json:"percent"`
			Gate    *struct {
				Manual bool `json:"manual"`
			} `json:"gate"`
		} `json:"waves"`
		FailureThreshold struct {
			Percent    float64 `json:"percent"`
			MinDevices int     `json:"min_devices"`
			Action     string  `json:"action"`
		} `json:"failure_threshold"`
		Pacing struct {
			MaxConcurrent int `json:"max_concurrent"`
		} `json:"pacing"`
		Schedule struct {
			Windows []struct {
				Cron, Duration string
				TimeZone       string `json:"time_zone"`
			} `json:"windows"`
		} `json:"schedule"`
	}
	ts.apiCall(t, "GET", "/api/v1/campaigns/"+id, nil, &got)
	if len(got.Waves) != 2 || got.Waves[0].Percent != 10 || got.Waves[0].Gate == nil || !got.Waves[0].Gate.Manual || got.Waves[1].Percent != 100 ||
		got.FailureThreshold.Percent != 10 || got.FailureThreshold.MinDevices != 5 || got.FailureThreshold.Action != "pause" ||
		got.Pacing.MaxConcurrent != 40 || len(got.Schedule.Windows) != 1 || got.Schedule.Windows[0].Cron != "0 0 * * *" ||
		got.Schedule.Windows[0].Duration != "24h" || got.Schedule.Windows[0].TimeZone != "UTC" {
		t.Errorf("the campaign holds %+v", got)
	}

	var hist struct {
		Samples []struct {
			Counts map[string]int `json:"counts"`
		} `json:"samples"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/campaigns/"+id+"/history", nil, &hist); code != 200 || len(hist.Samples) < 2 {
		t.Fatalf("history: %d, %d samples", code, len(hist.Samples))
	}
	if first, last := hist.Samples[0].Counts, hist.Samples[len(hist.Samples)-1].Counts; first["pending"] != consoleCreateFleetSize ||
		last["succeeded"] != consoleCreateFleetSize {
		t.Errorf("history from %v to %v", first, last)
	}
}

// Issue 15: a campaign a threshold paused at 100 % failures said "wave 2 may start" with its
// gate "open". The page now shows the gate held by the threshold and says that Resume alone
// would pause it again; resumed with a raised threshold from the page, it goes on and completes.
func TestConsoleCampaignThresholdResume(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms", "--campaign-tick", "200ms")
	img := uploadImage(t, ts, "2.0.0", fwImage("2.0.0", 4<<10))
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.UpdateFailure = true
	const n = 20
	startNamedFleet(t, ts, n, cfg, func(i int) string { return fmt.Sprintf("thr-%02d", i) })
	waitFor(t, "every device's model", time.Minute, func() bool {
		var l struct {
			Devices []json.RawMessage `json:"devices"`
		}
		ts.apiCall(t, "GET", "/api/v1/devices?prefix=thr-&model=sim-1&limit=100", nil, &l)
		return len(l.Devices) == n
	})
	var cmp struct {
		ID    string          `json:"id"`
		Error json.RawMessage `json:"error"`
	}
	body := map[string]any{
		"name": "faulty meters", "image_id": img, "method": "pull",
		"selector":          map[string]any{"query": `endpoint ^= "thr-"`},
		"waves":             []map[string]any{{"count": 5}, {"percent": 100}},
		"failure_threshold": map[string]any{"percent": 10, "min_devices": 5, "action": "pause"},
		"retries":           map[string]any{"retryable": 0, "terminal": 0},
		"start":             true,
	}
	if code := ts.apiCall(t, "POST", "/api/v1/campaigns", body, &cmp); code != 201 || cmp.ID == "" {
		t.Fatalf("create campaign: %d %s", code, cmp.Error)
	}

	b := newBrowser(t, ts)
	b.signIn(createToken(t, ts, "release-eng", "release"))
	b.open("#/campaigns/" + cmp.ID)
	b.waitText("main h1", "paused", 3*time.Minute)
	b.waitText("#resume-effect", "Resume will pause the campaign again at once", 30*time.Second)
	b.waitText("#resume-effect", "5 of 5 finished devices failed (100.0%)", 10*time.Second)
	waves := b.text("#waves")
	if strings.Contains(waves, "may start") || !strings.Contains(waves, "held by a failure threshold") {
		t.Errorf("the waves say:\n%s", waves)
	}
	b.screenshot("campaign-paused")

	// Resume with the threshold raised to 100 %: every device fails, and the campaign completes.
	b.do("resume with new thresholds", chromedp.Click(chromedp.ID("action-resume-raise")))
	b.waitJS("the dialog", `document.getElementById("confirm").open && !!document.getElementById("resume-th-percent")`, 10*time.Second)
	eval[chromedp.Void](b, `document.getElementById("resume-th-percent").value = "100"`)
	b.do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitText("main h1", "completed", 3*time.Minute)
	counter := `Number(document.querySelector('#counters [data-count="failed"] dd')?.textContent ?? -1)`
	b.waitJS("every device failed", counter+` === `+fmt.Sprint(n), 30*time.Second)
	b.waitText("#campaign-event-list", "failure threshold per wave now 100% of at least 5 finished devices: pause", 30*time.Second)
	if got := b.text("#campaign-event-list"); !strings.Contains(got, "release-eng") || !strings.Contains(got, "resumed") {
		t.Errorf("who did what:\n%s", got)
	}
}
