package registration_test

import (
	"strings"
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Registration details of issue 12, item 19: the longest endpoint name is the one a Uri-Query
// option can carry (252 bytes after "ep="), lifetimes have a maximum answered 4.00, and an
// alternate path with "." or ".." segments is refused. A refused Register stores nothing.
func TestRegisterLimitsOfIssue12(t *testing.T) {
	tests := []struct {
		name     string
		query    []string
		payload  string
		want     transport.Code
		diag     string // part of the diagnostic of a refusal
		lifetime uint32 // of the registration, when accepted
		root     string
	}{
		{name: "252-byte endpoint", query: []string{"ep=" + strings.Repeat("a", 252)}, want: transport.Created, lifetime: 86400, root: "/"},
		{name: "253-byte endpoint", query: []string{"ep=" + strings.Repeat("a", 253)}, want: transport.BadRequest, diag: "the limit is 252"},
		{name: "lifetime at the maximum", query: []string{"ep=lt-max", "lt=2592000"}, want: transport.Created, lifetime: 2592000, root: "/"},
		{name: "lifetime over the maximum", query: []string{"ep=lt-big", "lt=2592001"}, want: transport.BadRequest, diag: "longest lifetime this server accepts, 2592000 s"},
		{name: "lifetime until 2163", query: []string{"ep=lt-2163", "lt=4294967295"}, want: transport.BadRequest, diag: "lt=4294967295"},
		{name: "plain alternate path", query: []string{"ep=root-ok"}, payload: `</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>`, want: transport.Created, lifetime: 86400, root: "/lwm2m"},
		{name: "alternate path of dot-dots", query: []string{"ep=root-up"}, payload: `</../..>;rt="oma.lwm2m",</../../3/0>`, want: transport.BadRequest, diag: `alternate path "/../.."`},
		{name: "alternate path with a dot", query: []string{"ep=root-dot"}, payload: `</a/./b>;rt="oma.lwm2m",</a/./b/3/0>`, want: transport.BadRequest, diag: "segment"},
		{name: "alternate path ending in dot-dot", query: []string{"ep=root-end"}, payload: `</lwm2m/..>;rt="oma.lwm2m",</3/0>`, want: transport.BadRequest, diag: "segment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			payload := tc.payload
			if payload == "" {
				payload = "</3/0>"
			}
			resp := f.do(peer(40000, ""), request(transport.POST, "/rd", payload, tc.query...))
			if resp.Code != tc.want {
				t.Fatalf("register answered %s %q, want %s", resp.Code, resp.Payload, tc.want)
			}
			ep := strings.TrimPrefix(tc.query[0], "ep=")
			live, ok := f.reg.Get(ep)
			if tc.want != transport.Created {
				if !strings.Contains(string(resp.Payload), tc.diag) {
					t.Errorf("diagnostic %q does not say %q", resp.Payload, tc.diag)
				}
				if ok || f.reg.Count() != 0 {
					t.Errorf("a refused Register left a registration")
				}
				return
			}
			if !ok || live.Lifetime != tc.lifetime || live.RootPath != tc.root {
				t.Fatalf("registration %+v, want lifetime %d and root %q", live, tc.lifetime, tc.root)
			}
		})
	}
}

// An Update asking for a lifetime over the maximum is refused and changes nothing.
func TestUpdateLifetimeOverMaximum(t *testing.T) {
	f := newFixture(t)
	resp := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=600"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	id := resp.LocationPath[1]
	resp = f.do(peer(40000, ""), request(transport.POST, "/rd/"+id, "", "lt=4294967295"))
	if resp.Code != transport.BadRequest {
		t.Fatalf("update lt=4294967295 answered %s %q, want 4.00", resp.Code, resp.Payload)
	}
	if live, _ := f.reg.Get("dev"); live.Lifetime != 600 {
		t.Fatalf("lifetime after the refused Update: %d, want 600", live.Lifetime)
	}
}

// The endpoint limit never exceeds what a Uri-Query option can carry, whatever the config says.
func TestEndpointLimitCappedByUriQuery(t *testing.T) {
	f := newFixture(t)
	cfg := registration.DefaultConfig()
	cfg.MaxEndpointLen = 255
	reg := registration.New(f.store, nil, cfg, nil, nil, f.clock.Now)
	resp := reg.ServeCoAP(t.Context(), peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep="+strings.Repeat("b", lwm2m.MaxEndpointLen+1)))
	if resp.Code != transport.BadRequest || !strings.Contains(string(resp.Payload), "the limit is 252") {
		t.Fatalf("253-byte endpoint with MaxEndpointLen 255: %s %q", resp.Code, resp.Payload)
	}
}
