package registration_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

// TestRegisterLimits: each limit of a Register is answered with its code and a diagnostic
// naming it, counted under its name, and stores nothing.
func TestRegisterLimits(t *testing.T) {
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "reg.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := registration.DefaultConfig()
	cfg.MaxPayload, cfg.MaxObjects, cfg.MaxEndpointLen = 200, 3, 16
	promReg := prometheus.NewRegistry()
	r := registration.New(st, nil, cfg, nil, registration.NewMetrics(promReg), nil)

	cases := []struct {
		name, ep, payload string
		code              transport.Code
		limit, diagnostic string
	}{
		{"endpoint too long", strings.Repeat("e", 17), "</1/0>", transport.BadRequest, "endpoint_name", "17 bytes, the limit is 16"},
		{"control character", "dev\x1b[2J", "</1/0>", transport.BadRequest, "endpoint_name", "U+001B"},
		{"bidi override", "dev\u202e1", "</1/0>", transport.BadRequest, "endpoint_name", "U+202E"},
		{"too many objects", "dev-1", "</1/0>,</3/0>,</4/0>,</5/0>", transport.RequestEntityTooLarge, "objects_per_registration", "4 links in the object list, the limit is 3"},
		{"payload too large", "dev-1", "</1/0>," + strings.Repeat(" ", 200), transport.RequestEntityTooLarge, "registration_payload", "the limit is 200"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := r.ServeCoAP(context.Background(), peer(uint16(41000+i), ""), request(transport.POST, "/rd", tc.payload, "ep="+tc.ep, "lwm2m=1.1"))
			if resp.Code != tc.code || !strings.Contains(string(resp.Payload), tc.diagnostic) {
				t.Fatalf("answer %v %q, want %v with %q", resp.Code, resp.Payload, tc.code, tc.diagnostic)
			}
			if got := counterValue(t, promReg, "lwota_registration_limit_exceeded_total", tc.limit); got < 1 {
				t.Fatalf("limit %s not counted", tc.limit)
			}
		})
	}
	if got := counterValue(t, promReg, "lwota_registration_limit_exceeded_total", "endpoint_name"); got != 3 {
		t.Fatalf("endpoint_name counted %v, want 3", got)
	}
	if n := r.Count(); n != 0 {
		t.Fatalf("%d registrations after refusals", n)
	}
	// A refusal that is not a limit (a missing ep) is not counted as one.
	r.ServeCoAP(context.Background(), peer(42000, ""), request(transport.POST, "/rd", "</1/0>", "lt=60"))
	total := 0.0
	for _, l := range []string{"endpoint_name", "objects_per_registration", "registration_payload"} {
		total += counterValue(t, promReg, "lwota_registration_limit_exceeded_total", l)
	}
	if total != float64(len(cases)) {
		t.Fatalf("limits counted %v times, want %d", total, len(cases))
	}
}

func counterValue(t *testing.T, g prometheus.Gatherer, name, limit string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "limit" && lp.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{limit=%q}", name, limit)
	return 0
}
