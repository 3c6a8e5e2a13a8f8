package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// wakeRecorder is the campaign manager of TestCreateStartedWakesAfterAnswer: it notes, at each
// Wake, whether the create's answer had been written and flushed by then.
type wakeRecorder struct {
	Campaigns
	rec   *httptest.ResponseRecorder
	wakes []bool // per Wake: the answer was flushed before it
}

func (w *wakeRecorder) Wake() {
	w.wakes = append(w.wakes, w.rec.Flushed && w.rec.Code == http.StatusCreated && w.rec.Body.Len() > 0)
	w.Campaigns.Wake()
}

// TestCreateStartedWakesAfterAnswer: a campaign created started is answered (written and
// flushed) before the tick that starts its updates is woken, so that the tick's work for up to
// 10,000 devices does not run beside the answer; a draft wakes nothing.
func TestCreateStartedWakesAfterAnswer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start bool
		wakes int
	}{
		{"started", true, 1},
		{"draft", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCampaignEnv(t)
			w := &wakeRecorder{Campaigns: env.mgr, rec: httptest.NewRecorder()}
			env.api.WithCampaigns(w)
			body := `{"name": "a", "image_id": "img-1", "selector": {"endpoints": ["dev-00", "dev-01"]}, "waves": [{"percent": 100}], "start": ` +
				map[bool]string{true: "true", false: "false"}[tc.start] + `}`
			req := httptest.NewRequest(http.MethodPost, "/api/v1/campaigns", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			env.h.ServeHTTP(w.rec, req)
			if w.rec.Code != http.StatusCreated {
				t.Fatalf("status %d, want 201: %s", w.rec.Code, w.rec.Body)
			}
			if len(w.wakes) != tc.wakes {
				t.Fatalf("%d wakes, want %d", len(w.wakes), tc.wakes)
			}
			for _, answered := range w.wakes {
				if !answered {
					t.Fatal("the tick was woken before the answer was written and flushed")
				}
			}
		})
	}
}
