package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lwota/lwota/api/console"
	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// The web console, driven in Debian's Chromium (headless) against a real lwota with simulated
// devices. Every page load goes through request interception: a request to any host but lwota's
// fails as if the network were cut off, and fails the test.

var screenshots = flag.Bool("screenshots", false, "the console tests write docs/console-*.png")

// browser is one headless Chromium tab on one test service's console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:PORT

	mu      sync.Mutex
	foreign []string // requests to other hosts, refused
	local   int      // requests to lwota, let through
	errs    []string // uncaught exceptions and console errors
	allowed []string // substrings of console errors a test expects
}

// chromiumPath is Debian's Chromium; `make deps` installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	return sysdeps.Require(t, "chromium")
}

// newBrowser starts Chromium for ts; it is closed when the test ends, and the test fails then if
// the page reached for another host or threw.
func newBrowser(t *testing.T, ts *testService) *browser {
	t.Helper()
	u, err := url.Parse(ts.base)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, base: ts.base}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		// Without these Chromium reaches for Google's servers by itself.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.foreign) > 0 {
			t.Errorf("the console reached for hosts other than lwota's: %v", b.foreign)
		}
		if len(b.errs) > 0 {
			t.Errorf("the console logged errors:\n%s", strings.Join(b.errs, "\n"))
		}
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx and no timeout
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx

	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
				continue
			}
			// The browser logs every API answer of 400 and more; the tests provoke some on purpose
			// (a wrong token, a refused action), and the page shows them.
			if strings.Contains(m.URL, "/api/v1/") && strings.HasPrefix(m.Text, "Failed to load resource: the server responded") {
				continue
			}
			b.mu.Lock()
			expected := false
			for _, a := range b.allowed {
				expected = expected || strings.Contains(m.Text, a)
			}
			if !expected {
				b.errs = append(b.errs, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			}
			b.mu.Unlock()
		}
	})
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	wg.Go(func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			ru, _ := url.Parse(ev.Request.URL)
			if ru != nil && ru.Scheme == "http" && ru.Host == u.Host {
				b.mu.Lock()
				b.local++
				b.mu.Unlock()
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			b.mu.Lock()
			b.foreign = append(b.foreign, ev.Request.URL)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonInternetDisconnected})
		}
	})
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatalf("request interception: %v", err)
	}
	return b
}

// allow lets console errors containing s pass: the test provokes them.
func (b *browser) allow(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, s)
}

// do runs actions with a generous timeout; a failure shows where the page was.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.page())
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v\n%s", expr, err, b.page())
	}
	return v
}

// page is the console's location and visible text, for failure messages.
func (b *browser) page() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.querySelector("main")?.innerText ?? "")`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	if len(s) > 4000 {
		s = s[:4000] + "..."
	}
	return "page: " + s
}

// waitJS waits until the expression is true in the page.
func (b *browser) waitJS(what, expr string, d time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v\n%s", what, err, b.page())
	}
}

func jsString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}

// text is the visible text of the first element matching sel, "" when there is none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, `document.querySelector(`+jsString(sel)+`)?.innerText ?? ""`)
}

// waitText waits until the element sel shows want.
func (b *browser) waitText(sel, want string, d time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%q in %s", want, sel), `(document.querySelector(`+jsString(sel)+`)?.innerText ?? "").includes(`+jsString(want)+`)`, d)
}

// open goes to a view of the console (a fragment such as "#/devices") the way a link does.
func (b *browser) open(fragment string) {
	b.t.Helper()
	eval[chromedp.Void](b, `location.hash = `+jsString(fragment))
	b.waitJS("the view "+fragment, `document.querySelector("main").dataset.route === `+jsString(fragment), 30*time.Second)
}

// signIn loads the console and signs in with token, by keyboard.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.do("load the console", chromedp.Navigate(b.base+console.Prefix), chromedp.WaitVisible(chromedp.ID("token")))
	b.do("type the token", chromedp.SendKeys(chromedp.ID("token"), token+"\n"))
	b.waitJS("signed in", `!document.getElementById("who").hidden && !!document.querySelector("main h1") && !document.querySelector(".signin")`, 30*time.Second)
}

// screenshot writes docs/console-NAME.png, the whole page, when the test runs with -screenshots.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	b.capture(name, chromedp.FullScreenshot(100))
}

// capture writes docs/console-NAME.png from the screenshot action shot, with -screenshots.
func (b *browser) capture(name string, shot chromedp.Action[[]byte]) {
	b.t.Helper()
	if !*screenshots {
		return
	}
	// Let the fonts and the layout settle; this is a picture, not a check.
	b.do("settle", chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "..", "docs", "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s", path)
}

// createToken makes a token of role through the API and returns its secret.
func createToken(t *testing.T, ts *testService, name, role string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	if code := ts.apiCall(t, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": role}, &out); code != 201 || out.Token == "" {
		t.Fatalf("create %s token: %d", role, code)
	}
	return out.Token
}

// startNamedFleet starts n simulated devices named by name.
func startNamedFleet(t *testing.T, ts *testService, n int, cfg lwm2mtest.DeviceConfig, name func(i int) string) *lwm2mtest.Fleet {
	t.Helper()
	fleet := lwm2mtest.NewFleet(n, cfg, name, nil)
	t.Cleanup(func() { _ = fleet.Close() })
	if _, err := fleet.Start(context.Background(), ts.coap, 32); err != nil {
		t.Fatal(err)
	}
	return fleet
}

// uploadSignedImage trusts a new Ed25519 key and uploads body signed with it; it returns the key's id.
func uploadSignedImage(t *testing.T, ts *testService, version string, body []byte) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var key struct {
		ID string `json:"id"`
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if code := ts.apiCall(t, "POST", "/api/v1/signing-keys", map[string]string{"name": "release-ci", "public_key_pem": pemKey}, &key); code != 201 {
		t.Fatalf("add signing key: %d", code)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body))
	code, resp := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "meter-fw", "X-Lwota-Version": version, "X-Lwota-Model": "sim-1",
		"X-Lwota-Labels": "channel=stable", "X-Lwota-Signature": sig, "X-Lwota-Key-Id": key.ID}, bytes.NewReader(body), int64(len(body)))
	if code != 201 {
		t.Fatalf("signed upload: %d %s", code, resp)
	}
	return key.ID
}

// consoleFleetSize is the fleet of the lookup and campaign tests: the 500 devices.
const consoleFleetSize = 500

// Support staff look a device up among 500: they search by prefix and firmware version (with the
// keyboard), open the one whose update failed, and read why, with every step of its history.
func TestConsoleDeviceLookup(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "2.0.0", fwImage("2.0.0", 16<<10))
	const bad = 237
	name := func(i int) string { return fmt.Sprintf("meter-%03d", i) }
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	good := startNamedFleet(t, ts, consoleFleetSize-1, cfg, func(i int) string {
		if i >= bad {
			i++
		}
		return name(i)
	})
	cfg.Faults.UpdateFailure = true
	faulty := startNamedFleet(t, ts, 1, cfg, func(int) string { return name(bad) })

	// Update meter-230..239: nine succeed, meter-237 fails to install.
	var devs []*lwm2mtest.Device
	for _, d := range good.Devices() {
		if strings.HasPrefix(d.Endpoint(), "meter-23") {
			devs = append(devs, d)
		}
	}
	devs = append(devs, faulty.Devices()...)
	jobs := startUpdates(t, ts, devs, img, fwupdate.MethodPull, quickPolicy())
	done := waitJobs(t, ts, jobs, 2*time.Minute)
	if j := done[name(bad)]; j.State != fwupdate.StateFailed {
		t.Fatalf("%s: job %s (%s), want failed", name(bad), j.State, j.Reason)
	}

	// Labels on the ten: a region each, and a cell on the first five.
	for i := 230; i < 240; i++ {
		labels := map[string]string{"region": "us", "cell": "c9"}
		if i < 235 {
			labels = map[string]string{"region": "eu", "cell": "c7"}
		}
		if code := ts.apiCall(t, "PUT", "/api/v1/devices/"+name(i)+"/labels", map[string]any{"labels": labels}, nil); code != 200 {
			t.Fatalf("labels of %s: %d", name(i), code)
		}
	}

	b := newBrowser(t, ts)
	b.signIn(testAdminToken)
	b.waitText("main h1", "Devices", 10*time.Second)
	b.waitText("#result-count", fmt.Sprint(consoleFleetSize)+" devices (50 shown)", 30*time.Second)

	// By prefix, typed and submitted with Enter.
	b.do("search by prefix", chromedp.SendKeys(chromedp.ID("f-prefix"), "meter-23\n"))
	b.waitJS("ten results", `document.querySelectorAll("#device-results tbody tr").length === 10`, 30*time.Second)
	rows := b.text("#device-results tbody")
	if !strings.Contains(rows, name(bad)) || strings.Contains(rows, "meter-240") {
		t.Fatalf("prefix search shows:\n%s", rows)
	}
	b.screenshot("devices")

	// The one still on the old version, by firmware version.
	b.do("search by version", chromedp.SendKeys(chromedp.ID("f-firmware"), "1.0.0\n"))
	b.waitJS("one result", `document.querySelectorAll("#device-results tbody tr").length === 1`, 30*time.Second)
	if got := b.text("#device-results tbody"); !strings.Contains(got, name(bad)) {
		t.Fatalf("version search shows %q", got)
	}
	if h := eval[string](b, `location.hash`); !strings.Contains(h, "prefix=meter-23") || !strings.Contains(h, "firmware=1.0.0") {
		t.Fatalf("the search is not in the URL: %q", h)
	}

	// By labels, all of which must match.
	b.do("clear the search", chromedp.Click(chromedp.CSS(`form.search button[type=button]`)))
	b.waitJS("the search cleared", `location.hash === "#/devices" && document.getElementById("f-prefix").value === ""`, 10*time.Second)
	b.do("search by labels", chromedp.SendKeys(chromedp.ID("f-label"), "region:eu, cell:c7\n"))
	b.waitJS("five results", `document.querySelectorAll("#device-results tbody tr").length === 5`, 30*time.Second)
	if got := b.text("#device-results tbody"); !strings.Contains(got, "meter-234") || strings.Contains(got, name(bad)) || !strings.Contains(got, "region=eu") {
		t.Fatalf("label search shows:\n%s", got)
	}
	b.open("#/devices?prefix=meter-23&firmware=1.0.0")
	b.waitJS("one result", `document.querySelectorAll("#device-results tbody tr").length === 1`, 30*time.Second)

	// Its page: the answer first, then the job's steps.
	b.do("open the device", chromedp.Click(chromedp.CSS(`#device-results a[href="#/devices/`+name(bad)+`"]`)))
	b.waitText("#failure-reason", "firmware update failed", 30*time.Second)
	b.waitText("#latest-update", "it failed", 10*time.Second)
	if got := b.text("#current-version"); got != "1.0.0" {
		t.Errorf("current version %q, want 1.0.0", got)
	}
	job := "#job-" + done[name(bad)].ID
	b.waitJS("the job's steps", `document.querySelectorAll("`+job+` table.history tbody tr").length >= 4`, 30*time.Second)
	steps := b.text(job + " table.history")
	for _, want := range []string{"sending the firmware", "installing (the device reboots)", "installing the firmware failed (8)", "failed"} {
		if !strings.Contains(steps, want) {
			t.Errorf("history lacks %q:\n%s", want, steps)
		}
	}
	card := b.text(job)
	for _, want := range []string{"Failure reason", "16 KiB of 16 KiB", "Attempt", "none (started for this device alone)"} {
		if !strings.Contains(card, want) {
			t.Errorf("job card lacks %q:\n%s", want, card)
		}
	}
	reg := b.text("main")
	for _, want := range []string{"Last seen", "U (UDP)", "Queue mode", "CoAP over UDP", "NoSec", "Lifetime", "Firmware Update"} {
		if !strings.Contains(reg, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	b.screenshot("device")

	// A phone: nothing wider than the screen.
	b.do("phone viewport", chromedp.EmulateViewport(375, 800))
	b.waitJS("no horizontal scrolling at 375 px", `document.documentElement.scrollWidth <= 375`, 10*time.Second)
	b.capture("device-phone", chromedp.CaptureScreenshot()) // what a phone shows first
	b.open("#/devices?prefix=meter-23")
	b.waitJS("no horizontal scrolling of the list at 375 px", `document.querySelectorAll("#device-results tbody tr").length === 10 && document.documentElement.scrollWidth <= 375`, 30*time.Second)
}

// A support token sees no action; a release token can start and cancel an update, behind a
// confirmation; a ci token sees only images; a wrong token is refused; signing out forgets it.
func TestConsoleRoles(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "2.0.0", fwImage("2.0.0", 64<<10))
	other := fwImage("2.0.0", 1<<10) // the same version for another model: not offered for this device
	code, resp := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "tracker-fw", "X-Lwota-Version": "2.0.0", "X-Lwota-Model": "tracker-9"},
		bytes.NewReader(other), int64(len(other)))
	if code != 201 {
		t.Fatalf("upload for another model: %d %s", code, resp)
	}
	var otherImg struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(resp), &otherImg); err != nil {
		t.Fatal(err)
	}
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.BytesPerSecond = 1 << 10 // the job stays delivering for a minute
	cfg.Object5Version = "1.1"          // a cancel executes /5/0/10
	dev := startFleet(t, ts, "role", 1, cfg).Devices()[0]
	ep := dev.Endpoint()
	if code := ts.apiCall(t, "PATCH", "/api/v1/images/"+img, map[string]any{"release_notes": "Fixes the meter's clock drift."}, nil); code != 200 {
		t.Fatalf("PATCH release notes: %d", code)
	}
	jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())
	support := createToken(t, ts, "support-desk", "support")
	release := createToken(t, ts, "release-eng", "release")
	ci := createToken(t, ts, "ci-pipeline", "ci")

	t.Run("support", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(support)
		if got := b.text("#who-name"); got != "support-desk (support)" {
			t.Errorf("signed in as %q", got)
		}
		b.open("#/devices/" + ep)
		b.waitJS("the job", `!!document.querySelector("#job-`+jobs[ep]+`")`, 30*time.Second)
		if n := eval[int](b, `document.querySelectorAll("main button, main .start-update").length`); n != 0 {
			t.Errorf("support sees %d action controls on the device page", n)
		}
		b.open("#/campaigns")
		if n := eval[int](b, `document.querySelectorAll("main .campaign-actions button").length`); n != 0 {
			t.Errorf("support sees %d campaign actions", n)
		}
	})

	t.Run("release", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(release)
		b.open("#/devices/" + ep)
		b.waitJS("the start form", `!!document.getElementById("start-update")`, 30*time.Second)
		// Cancel, through the confirmation dialog, with a reason.
		cancelButton := `#job-` + jobs[ep] + ` button.danger`
		b.waitJS("the cancel button", `!!document.querySelector("`+cancelButton+`")`, 30*time.Second)
		b.do("cancel", chromedp.Click(chromedp.CSS(cancelButton)))
		b.waitJS("the confirmation", `document.getElementById("confirm").open`, 10*time.Second)
		b.do("give a reason", chromedp.SendKeys(chromedp.ID("cancel-reason"), "wrong image"), chromedp.Click(chromedp.ID("confirm-ok")))
		b.waitJS("the job cancelled", `document.querySelector("#job-`+jobs[ep]+`")?.dataset.state === "cancelled"`, 60*time.Second)
		if got := b.text("#job-" + jobs[ep]); !strings.Contains(got, "wrong image") {
			t.Errorf("cancelled job shows %q", got)
		}
		// Start a new one from the form, confirmed.
		b.waitJS("the image list", `!!document.querySelector("#start-image option[value='`+img+`']")`, 30*time.Second)
		if eval[bool](b, `!!document.querySelector("#start-image option[value='`+otherImg.ID+`']")`) {
			t.Errorf("the start form offers an image for model tracker-9 to a %s device", "sim-1")
		}
		b.do("choose the image", chromedp.SetValue(chromedp.ID("start-image"), img))
		eval[bool](b, `document.getElementById("start-image").dispatchEvent(new Event("change"))`)
		// Its release notes are shown before the update starts.
		b.waitJS("the release notes", `document.getElementById("start-notes")?.textContent === "Fixes the meter's clock drift."`, 10*time.Second)
		b.do("start", chromedp.Click(chromedp.ID("start-update")))
		b.waitJS("the confirmation", `document.getElementById("confirm").open`, 10*time.Second)
		b.do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
		b.waitJS("a second job", `document.querySelectorAll("#jobs article.job").length === 2`, 30*time.Second)
	})

	t.Run("ci", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(ci)
		b.waitText("main h1", "Images", 10*time.Second)
		if nav := b.text("#nav"); strings.Contains(nav, "Devices") || strings.Contains(nav, "Campaigns") || !strings.Contains(nav, "Images") {
			t.Errorf("ci navigation shows %q", nav)
		}
		b.open("#/devices")
		b.waitText("main h1", "Not for this role", 10*time.Second)
	})

	t.Run("wrong token and sign-out", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.do("load", chromedp.Navigate(b.base+console.Prefix), chromedp.WaitVisible(chromedp.ID("token")))
		b.do("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "lwota_not-a-token\n"))
		b.waitText("#signin-error", "unknown or has been revoked", 10*time.Second)
		if got := eval[string](b, `sessionStorage.getItem("lwota.token") ?? ""`); got != "" {
			t.Errorf("a refused token was kept: %q", got)
		}
		eval[chromedp.Void](b, `document.getElementById("token").value = ""`)
		b.do("sign in", chromedp.SendKeys(chromedp.ID("token"), support+"\n"))
		b.waitJS("signed in", `!document.getElementById("who").hidden`, 10*time.Second)
		if got := eval[string](b, `sessionStorage.getItem("lwota.token") ?? ""`); got != support {
			t.Errorf("session storage holds %q", got)
		}
		if got := eval[string](b, `localStorage.length + document.cookie`); got != "0" {
			t.Errorf("the token went beyond session storage: %q", got)
		}
		b.do("sign out", chromedp.Click(chromedp.ID("sign-out")))
		b.waitJS("the sign-in form", `!!document.getElementById("token")`, 10*time.Second)
		if got := eval[string](b, `sessionStorage.getItem("lwota.token") ?? ""`); got != "" {
			t.Errorf("signed out, session storage still holds %q", got)
		}
	})
}

// The console loads and works with the network cut off to everything but lwota: the pages load
// no font, script or style from elsewhere, and the Content-Security-Policy refuses any other host.
func TestConsoleOffline(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned")
	rc := uploadImage(t, ts, "2.1.0-rc1", fwImage("2.1.0-rc1", 6<<10))
	keyID := uploadSignedImage(t, ts, "2.0.0", fwImage("2.0.0", 40<<10))
	dev := startFleet(t, ts, "offline", 3, simTemplate()).Devices()[0]

	// Served by lwota serve itself, with the policy; "/" leads there.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(ts.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != console.Prefix {
		t.Errorf("GET /: %d to %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), console.Prefix)
	}
	resp, err = http.Get(ts.base + console.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.HasPrefix(csp, "default-src 'self'") {
		t.Fatalf("GET /ui/: %d, Content-Security-Policy %q", resp.StatusCode, csp)
	}

	b := newBrowser(t, ts)
	b.signIn(testAdminToken)
	for _, v := range []struct{ fragment, want string }{
		{"#/devices", "offline-0"},
		{"#/devices/" + dev.Endpoint(), "Registration"},
		{"#/campaigns", "Campaigns"},
		{"#/images", "2.1.0-rc1"},
	} {
		b.open(v.fragment)
		b.waitText("main", v.want, 30*time.Second)
	}
	if got := b.text("#image-list"); !strings.Contains(got, "unsigned") || !strings.Contains(got, "6.0 KiB") || !strings.Contains(got, "release-ci (ed25519)") ||
		!strings.Contains(got, rc) {
		t.Errorf("image list shows:\n%s", got)
	}
	if n := eval[int](b, `document.querySelectorAll('#image-list [title="key id `+keyID+`"]').length`); n != 1 {
		t.Errorf("the signing key's id is on %d elements, want 1 (the key name's title)", n)
	}
	if n := eval[int](b, `document.querySelectorAll("#image-list button.copy").length`); n != 2 {
		t.Errorf("%d copy buttons for 2 image ids", n)
	}
	b.screenshot("images")

	// The policy at work: the page may not even try another host.
	b.allow("192.0.2.1")
	blocked := eval[string](b, `new Promise((resolve) => {
		document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective + " " + e.blockedURI), {once: true});
		fetch("http://192.0.2.1/font.woff2").catch(() => {});
	})`)
	if !strings.Contains(blocked, "192.0.2.1") {
		t.Errorf("the Content-Security-Policy did not refuse another host: %q", blocked)
	}
	b.mu.Lock()
	local := b.local
	b.mu.Unlock()
	if local < 10 {
		t.Errorf("only %d requests reached lwota: is the interception working?", local)
	}
}

// A release engineer watches a campaign over 500 devices: the counters move without a reload,
// pause and resume are buttons, the failure reasons are ranked, and a failed device is found by
// searching and shows why. A support token sees the same page without a single action.
func TestConsoleCampaign(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms", "--campaign-tick", "200ms")
	img := uploadImage(t, ts, "2.0.0", fwImage("2.0.0", 8<<10))
	// Every 50th device, from cmp-007 on, fails to install; the rest succeed, slowly enough to watch.
	const faultyEvery, faultyAt, faultyCount = 50, 7, consoleFleetSize / 50
	name := func(i int) string { return fmt.Sprintf("cmp-%03d", i) }
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.UpdateDelay = 300 * time.Millisecond
	var good []string
	for i := range consoleFleetSize {
		if i%faultyEvery != faultyAt {
			good = append(good, name(i))
		}
	}
	startNamedFleet(t, ts, len(good), cfg, func(i int) string { return good[i] })
	cfg.Faults.UpdateFailure = true
	startNamedFleet(t, ts, faultyCount, cfg, func(i int) string { return name(i*faultyEvery + faultyAt) })

	// The image is for model sim-1: the campaign takes devices once lwota has read their model.
	waitFor(t, "every device's model", time.Minute, func() bool {
		var l struct {
			Devices []json.RawMessage `json:"devices"`
		}
		ts.apiCall(t, "GET", "/api/v1/devices?prefix=cmp-&model=sim-1&limit=1000", nil, &l)
		return len(l.Devices) == consoleFleetSize
	})
	var cmp struct {
		ID    string          `json:"id"`
		State string          `json:"state"`
		Error json.RawMessage `json:"error"`
	}
	body := map[string]any{
		"name": "meters to 2.0.0", "image_id": img, "method": "pull",
		"selector":          map[string]any{"query": `endpoint ^= "cmp-"`},
		"waves":             []map[string]any{{"percent": 100}},
		"pacing":            map[string]any{"max_concurrent": 20},
		"failure_threshold": map[string]any{"percent": 50, "min_devices": 50, "action": "pause"},
		"start":             true,
	}
	if code := ts.apiCall(t, "POST", "/api/v1/campaigns", body, &cmp); code != 201 || cmp.ID == "" {
		t.Fatalf("create campaign: %d %s", code, cmp.Error)
	}
	page := "#/campaigns/" + cmp.ID
	counter := func(k string) string {
		return `Number(document.querySelector('#counters [data-count="` + k + `"] dd')?.textContent ?? -1)`
	}

	t.Run("support sees no action", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(createToken(t, ts, "support-desk", "support"))
		b.open("#/campaigns")
		b.waitText("#campaign-list", "meters to 2.0.0", 30*time.Second)
		b.open(page)
		b.waitJS("the counters", counter("total")+` === `+fmt.Sprint(consoleFleetSize), 30*time.Second)
		if n := eval[int](b, `document.querySelectorAll("main button:not([type=submit])").length + document.querySelectorAll("#campaign-actions button").length`); n != 0 {
			t.Errorf("support sees %d buttons on the campaign page", n)
		}
	})

	b := newBrowser(t, ts)
	b.signIn(createToken(t, ts, "release-eng", "release"))
	b.open(page)
	b.waitJS("the counters", counter("total")+` === `+fmt.Sprint(consoleFleetSize), 30*time.Second)
	// A mark on the window: a reload would wipe it.
	eval[chromedp.Void](b, `window.consoleTestMark = 1`)
	done0 := eval[int](b, counter("succeeded"))
	b.waitJS("the succeeded counter to move", counter("succeeded")+` > `+fmt.Sprint(done0), 2*time.Minute)
	b.waitText("#live", "Live", 10*time.Second)

	// Pause and resume with the buttons.
	b.do("pause", chromedp.Click(chromedp.ID("action-pause")))
	b.waitText("main h1", "paused", 30*time.Second)
	b.waitText("#campaign-reason", "paused in the web console by release-eng", 10*time.Second)
	if ts.apiCall(t, "GET", "/api/v1/campaigns/"+cmp.ID, nil, &cmp); cmp.State != "paused" {
		t.Fatalf("after the pause button the campaign is %s", cmp.State)
	}
	b.waitJS("the resume button", `!!document.getElementById("action-resume") && !document.getElementById("action-pause")`, 10*time.Second)
	b.do("resume", chromedp.Click(chromedp.ID("action-resume")))
	b.waitText("main h1", "running", 30*time.Second)
	paused := eval[int](b, counter("succeeded"))
	b.waitJS("the counters to move again", counter("succeeded")+` > `+fmt.Sprint(paused), 2*time.Minute)

	// Failures: counted, ranked by reason, listed.
	b.waitJS("a failure", counter("failed")+` > 0`, 3*time.Minute)
	b.waitText("#failure-reasons", "firmware update failed", 30*time.Second)
	b.screenshot("campaign")
	if eval[int](b, `window.consoleTestMark ?? 0`) != 1 {
		t.Fatal("the page was reloaded")
	}
	eval[chromedp.Void](b, `(() => { const s = document.getElementById("f-device-state"); s.value = "failed"; s.dispatchEvent(new Event("change")); })()`)
	b.waitText("#campaign-device-list", "firmware update failed", 30*time.Second)
	failed := b.text("#campaign-device-list tbody tr td a")
	if !strings.HasPrefix(failed, "cmp-") || !strings.HasSuffix(failed, "07") && !strings.HasSuffix(failed, "57") {
		t.Fatalf("first failed device %q is not one of the faulty ones", failed)
	}

	// Support's question, by search: the failed device, why, and the campaign it was in.
	b.open("#/devices")
	b.do("search", chromedp.SendKeys(chromedp.ID("f-prefix"), failed+"\n"))
	b.waitJS("the device found", `document.querySelectorAll("#device-results tbody tr").length === 1`, 30*time.Second)
	b.do("open it", chromedp.Click(chromedp.CSS(`#device-results a[href="#/devices/`+failed+`"]`)))
	b.waitText("#failure-reason", "firmware update failed", 30*time.Second)
	b.waitText("#latest-update", cmp.ID, 10*time.Second)
}
