package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// In the console an admin adds a webhook (its secret shown once), sees a subscription's dead
// letters and sends one again; support staff see the list without the admin's controls.
func TestConsoleWebhooks(t *testing.T) {
	var healthy atomic.Bool
	var delivered atomic.Int32
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
	}))
	defer rx.Close()
	// One attempt: the first failure is a dead letter.
	ts := startService(t, t.TempDir(), "", "--webhook-max-attempts", "1")
	var sub struct {
		ID string `json:"id"`
	}
	if code := ts.apiCall(t, "POST", "/api/v1/webhooks", map[string]any{"url": rx.URL, "kinds": []string{"registration"}}, &sub); code != 201 {
		t.Fatalf("create webhook: %d", code)
	}
	startFleet(t, ts, "hooked", 1, fleetConfig("pull")) // its Register is the dead letter
	waitFor(t, "a dead letter", time.Minute, func() bool {
		var dead struct {
			Deliveries []any `json:"deliveries"`
		}
		ts.apiCall(t, "GET", "/api/v1/webhooks/"+sub.ID+"/deliveries?state=dead", nil, &dead)
		return len(dead.Deliveries) == 1
	})

	t.Run("admin", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(testAdminToken)
		b.open("#/webhooks")
		b.waitText("#webhook-list", sub.ID, 30*time.Second)
		b.do("fill in a webhook", chromedp.SendKeys(chromedp.ID("wh-url"), rx.URL+"/second"),
			chromedp.Click(chromedp.ID("wh-kind-update_job")), chromedp.Click(chromedp.ID("wh-kind-campaign")),
			chromedp.Click(chromedp.CSS(`form[aria-label="Add a webhook"] button[type=submit]`)))
		b.waitText("#wh-secret", "shown only now", 30*time.Second)
		if s := b.text("#wh-secret code.hash"); len(s) != 64 {
			t.Fatalf("secret shown: %q", s)
		}
		b.do("show the dead letters", chromedp.Click(chromedp.CSS(`#webhook-list tbody tr:first-child button.dead-letters`)))
		b.waitText("#webhook-dead-list", "registered", 30*time.Second)
		healthy.Store(true)
		b.do("retry", chromedp.Click(chromedp.CSS(`#webhook-dead-list tbody button.retry`)))
		b.waitText("#webhook-dead-list", "Queued", 30*time.Second)
		waitFor(t, "the retried delivery", time.Minute, func() bool { return delivered.Load() == 1 })
	})

	t.Run("support", func(t *testing.T) {
		b := newBrowser(t, ts)
		b.signIn(createToken(t, ts, "support-desk", "support"))
		b.open("#/webhooks")
		b.waitText("#webhook-list", sub.ID, 30*time.Second)
		if n := eval[int](b, `document.querySelectorAll("main button.danger, main form[aria-label='Add a webhook']").length`); n != 0 {
			t.Errorf("support sees %d admin controls", n)
		}
		if got := b.text("main"); strings.Contains(got, "Add a webhook") {
			t.Errorf("support sees the create form")
		}
	})
}
