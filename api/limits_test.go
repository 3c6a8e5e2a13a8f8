package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLimitsCounted: a JSON body over MaxBodyBytes and an image over the upload maximum are
// refused with 413 and counted under their limit; other errors are not.
func TestLimitsCounted(t *testing.T) {
	env, _ := newImageEnv(t, 1000)
	reg := prometheus.NewRegistry()
	env.api.WithMetrics(reg)

	wantError(t, env.do(t, http.MethodPut, "/api/v1/devices/dev-a/objects/3/0/14", `{"value":"`+strings.Repeat("x", 2<<20)+`"}`),
		http.StatusRequestEntityTooLarge, codeBodyTooLarge)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader(strings.Repeat("x", 1001)))
	req.Header.Set("Content-Type", "application/octet-stream")
	wantError(t, serve(env.h, req), http.StatusRequestEntityTooLarge, codeImageTooLarge)
	wantError(t, env.do(t, http.MethodGet, "/api/v1/nothing", ""), http.StatusNotFound, codeNotFound)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "lwota_api_limit_exceeded_total" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if want := map[string]float64{"json_body": 1, "upload_size": 1, "event_streams": 0}; len(got) != len(want) || got["json_body"] != 1 || got["upload_size"] != 1 || got["event_streams"] != 0 {
		t.Fatalf("lwota_api_limit_exceeded_total %v, want %v", got, want)
	}
}
