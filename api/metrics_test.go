package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRequestMetrics: every answer is counted once by method, route template and status class,
// error answers written by the error handler included, and timed by method and route. Raw paths
// (endpoint names, typos) never become label values.
func TestRequestMetrics(t *testing.T) {
	env := newTestEnv(t, Config{})
	reg := prometheus.NewRegistry()
	env.api.WithMetrics(reg)

	calls := []struct {
		method, target string
		header         []string
		status         int
	}{
		{"GET", "/api/v1/devices", nil, 200},
		{"GET", "/api/v1/devices?limit=1", nil, 200},
		{"GET", "/api/v1/devices/dev-a", nil, 200},
		{"GET", "/api/v1/devices/no-such-device", nil, 404}, // a route's own 404
		{"GET", "/api/v1/devices?online=maybe", nil, 400},
		{"GET", "/api/v1/devices", []string{"Authorization", ""}, 401},
		{"GET", "/api/v1/openapi.json", []string{"Authorization", ""}, 200},
		{"GET", "/api/v1/no/such/route", nil, 404},
		{"BREW", "/api/v1/devices", nil, 405},
		{"DELETE", "/api/v1/devices", nil, 405},
	}
	for _, c := range calls {
		if r := env.do(t, c.method, c.target, "", c.header...); r.status != c.status {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.target, r.status, r.body, c.status)
		}
	}
	env.devs.err = errors.New("store down")
	if r := env.do(t, "GET", "/api/v1/devices", ""); r.status != 500 {
		t.Fatalf("GET /devices with a failing store: %d, want 500", r.status)
	}

	want := `
# HELP lwota_api_requests_total API requests answered, by method, route template and status class (2xx, 4xx, 5xx).
# TYPE lwota_api_requests_total counter
lwota_api_requests_total{method="DELETE",route="unmatched",status_class="4xx"} 1
lwota_api_requests_total{method="GET",route="/api/v1/devices",status_class="2xx"} 2
lwota_api_requests_total{method="GET",route="/api/v1/devices",status_class="4xx"} 2
lwota_api_requests_total{method="GET",route="/api/v1/devices",status_class="5xx"} 1
lwota_api_requests_total{method="GET",route="/api/v1/devices/:endpoint",status_class="2xx"} 1
lwota_api_requests_total{method="GET",route="/api/v1/devices/:endpoint",status_class="4xx"} 1
lwota_api_requests_total{method="GET",route="/api/v1/openapi.json",status_class="2xx"} 1
lwota_api_requests_total{method="GET",route="unmatched",status_class="4xx"} 1
lwota_api_requests_total{method="other",route="unmatched",status_class="4xx"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lwota_api_requests_total"); err != nil {
		t.Fatal(err)
	}
	// One histogram per method and route: 6 of them, holding the 11 answers.
	if n := testutil.CollectAndCount(reg, "lwota_api_request_duration_seconds"); n != 6 {
		t.Errorf("%d duration series, want 6", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var observed uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "dev-a") || strings.Contains(v, "no-such") || strings.Contains(v, "BREW") {
					t.Errorf("%s has the raw label value %q", mf.GetName(), v)
				}
			}
			if mf.GetName() == "lwota_api_request_duration_seconds" {
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if observed != uint64(len(calls)+1) {
		t.Errorf("%d requests timed, want %d", observed, len(calls)+1)
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{200: "2xx", 204: "2xx", 304: "3xx", 404: "4xx", 499: "4xx", 503: "5xx", 0: "other", 600: "other", 99: "other"} {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
}
