package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// A release engineer opens the fleet overview (versions per model, presence, updates in
// progress, the day's failures) and an image's page (key name, release notes, metadata, the
// devices on it, the campaign using it), edits nothing, and tries to delete the image in use:
// lwota refuses, and the page says why. An admin reads the audit log of the edit.
func TestConsoleFleetAndImage(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	uploadSignedImage(t, ts, "2.0.0", fwImage("2.0.0", 12<<10))
	var imgs struct {
		Images []struct {
			ID string `json:"id"`
		} `json:"images"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/images?version=2.0.0", nil, &imgs); code != 200 || len(imgs.Images) != 1 {
		t.Fatalf("find the image: %d %+v", code, imgs)
	}
	img := imgs.Images[0].ID
	edit := map[string]any{"release_notes": "Fixes the meter's sleep bug.\nCuts uplink traffic by 20 %.",
		"metadata": map[string]string{"ticket": "FW-1234", "branch": "release/2.0"}}
	if code := ts.apiCall(t, "PATCH", "/api/v1/images/"+img, edit, nil); code != 200 {
		t.Fatalf("PATCH image: %d", code)
	}

	// Twenty meters on 1.0.0; six get 2.0.0, one of which fails to install.
	const n, updated = 20, 6
	name := func(i int) string { return fmt.Sprintf("fl-%02d", i) }
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	good := startNamedFleet(t, ts, n-1, cfg, func(i int) string { return name(i + 1) })
	cfg.Faults.UpdateFailure = true
	faulty := startNamedFleet(t, ts, 1, cfg, func(int) string { return name(0) })
	devs := append(faulty.Devices(), good.Devices()[:updated-1]...)
	jobs := startUpdates(t, ts, devs, img, fwupdate.MethodPull, quickPolicy())
	done := waitJobs(t, ts, jobs, 2*time.Minute)
	if j := done[name(0)]; j.State != fwupdate.StateFailed {
		t.Fatalf("%s: job %s (%s), want failed", name(0), j.State, j.Reason)
	}
	waitFor(t, "the updated versions", time.Minute, func() bool {
		var l struct {
			Devices []struct{} `json:"devices"`
		}
		ts.apiCall(t, "GET", "/api/v1/devices?firmware=2.0.0&limit=100", nil, &l)
		return len(l.Devices) == updated-1
	})
	// A draft campaign names the image: it is in use.
	var cmp struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": "meters to 2.0.0", "image_id": img, "selector": map[string]any{"endpoints": []string{name(10)}},
		"waves": []map[string]any{{"percent": 100}}}
	if code := ts.apiCall(t, "POST", "/api/v1/campaigns", body, &cmp); code != 201 {
		t.Fatalf("create campaign: %d", code)
	}

	b := newBrowser(t, ts)
	b.signIn(createToken(t, ts, "release-eng", "release"))
	b.open("#/fleet")
	b.waitText("#fleet-known", fmt.Sprint(n), 30*time.Second)
	if got := b.text("#fleet-online"); !strings.HasPrefix(got, fmt.Sprint(n)+" (100 %") {
		t.Errorf("online %q, want all %d", got, n)
	}
	if got := b.text("#fleet-failed"); got != "1" {
		t.Errorf("failed in 24 h %q, want 1", got)
	}
	versions := b.text("#fleet-versions tbody")
	for _, want := range []string{"1.0.0\tsim-1\t15\t15", "2.0.0\tsim-1\t5\t5"} {
		if !strings.Contains(versions, want) {
			t.Errorf("versions table lacks %q:\n%s", want, versions)
		}
	}
	if got := b.text("#fleet-failures"); !strings.Contains(got, "firmware update failed") {
		t.Errorf("failures by reason:\n%s", got)
	}
	b.screenshot("fleet")

	// From a version to its devices: a comparison, a total, the last update, sortable columns.
	b.do("open the 1.0.0 devices", chromedp.Click(chromedp.CSS(`#fleet-versions a[href*="firmware=1.0.0"]`)))
	b.waitText("#result-count", "15 devices", 30*time.Second)
	b.open("#/devices?firmware=" + "%3C%202.0.0&sort=-last_seen")
	b.waitText("#result-count", "15 devices", 30*time.Second)
	if got := b.text("#device-results"); !strings.Contains(got, name(0)) || !strings.Contains(got, "failed 2.0.0") {
		t.Errorf("devices below 2.0.0 lack %s and its failed update:\n%s", name(0), got)
	}
	if sort := eval[string](b, `document.querySelector("#device-results th[aria-sort]")?.textContent || ""`); !strings.HasPrefix(sort, "Last seen") {
		t.Errorf("sorted column %q, want Last seen", sort)
	}
	b.do("sort by firmware", chromedp.Click(chromedp.ID("sort-firmware")))
	b.waitJS("sorted by firmware", `location.hash.includes("sort=firmware") && document.querySelector("#device-results th[aria-sort=ascending]")?.textContent.startsWith("Firmware")`, 30*time.Second)

	// The image's page.
	b.open("#/images")
	b.do("open the image", chromedp.Click(chromedp.CSS(`#image-list a[href="#/images/`+img+`"]`)))
	b.waitText("main h1", "Image 2.0.0", 30*time.Second)
	for sel, want := range map[string]string{
		"#signing-key":     "release-ci (ed25519)",
		"#release-notes":   "Cuts uplink traffic by 20 %.",
		"#image-metadata":  "FW-1234",
		"#image-devices":   "5 devices run 2.0.0 on sim-1",
		"#image-campaigns": "meters to 2.0.0",
	} {
		if got := b.text(sel); !strings.Contains(got, want) {
			t.Errorf("%s shows %q, want %q", sel, got, want)
		}
	}
	if n := eval[int](b, `document.querySelectorAll("#delete-image").length`); n != 0 {
		t.Errorf("a release token sees the delete button")
	}
	b.screenshot("image")

	// Edit the notes and metadata in the dialog; bad metadata is refused on the page.
	b.do("edit", chromedp.Click(chromedp.ID("edit-image")), chromedp.WaitVisible(chromedp.ID("edit-notes")))
	eval[chromedp.Void](b, `(() => { document.getElementById("edit-notes").value = "Hotfix: no more resets.";
		document.getElementById("edit-metadata").value = "ticket=FW-1300\nreviewed=yes"; })()`)
	b.do("save", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitText("#release-notes", "Hotfix: no more resets.", 30*time.Second)
	if got := b.text("#image-metadata"); !strings.Contains(got, "FW-1300") || !strings.Contains(got, "reviewed") || strings.Contains(got, "release/2.0") {
		t.Errorf("metadata after the edit:\n%s", got)
	}
	b.do("edit again", chromedp.Click(chromedp.ID("edit-image")), chromedp.WaitVisible(chromedp.ID("edit-metadata")))
	eval[chromedp.Void](b, `(() => { document.getElementById("edit-metadata").value = "=no key"; })()`)
	b.do("save", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitText("#edit-error", "key=value", 30*time.Second)
	b.do("edit a third time", chromedp.Click(chromedp.ID("edit-image")), chromedp.WaitVisible(chromedp.ID("edit-metadata")))
	eval[chromedp.Void](b, `(() => { document.getElementById("edit-metadata").value = "`+strings.Repeat("k", 64)+`=v"; })()`)
	b.do("save", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitText("#edit-error", "invalid_image", 30*time.Second)
	if got := b.text("#release-notes"); got != "Hotfix: no more resets." {
		t.Errorf("a refused edit changed the notes to %q", got)
	}

	// An admin tries to delete it: refused while the campaign names it.
	admin := newBrowser(t, ts)
	admin.signIn(testAdminToken)
	admin.open("#/images/" + img)
	admin.waitText("main h1", "Image 2.0.0", 30*time.Second)
	admin.do("delete", chromedp.Click(chromedp.ID("delete-image")))
	admin.do("confirm", chromedp.WaitVisible(chromedp.ID("confirm-ok")), chromedp.Click(chromedp.ID("confirm-ok")))
	admin.waitText("#delete-error", "image_in_use", 30*time.Second)
	if code := ts.apiCall(t, "GET", "/api/v1/images/"+img, nil, nil); code != 200 {
		t.Fatalf("the image is gone after the refusal: %d", code)
	}

	// The audit log has the edit.
	admin.open("#/audit")
	admin.waitText("#audit-list", "PATCH /api/v1/images/:id", 30*time.Second)
	admin.do("filter by action", chromedp.Click(chromedp.CSS(`#audit-list a[href*="action=PATCH"]`)))
	admin.waitJS("three PATCHes (the bad metadata line never left the page)", `document.querySelectorAll("#audit-list tbody tr").length === 3`, 30*time.Second)
	if got := admin.text("#audit-list"); !strings.Contains(got, "metadata_keys=branch,ticket") || !strings.Contains(got, "metadata_keys=reviewed,ticket") {
		t.Errorf("audit entry:\n%s", got)
	}
}
