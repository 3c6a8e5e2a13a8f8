package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
)

// TestCompositeRequests checks the dm.Request each composite route builds, and what it refuses
// before anything reaches the device.
func TestCompositeRequests(t *testing.T) {
	const dev = "/api/v1/devices/urn:imei:356938035643809/composite"
	status := []lwm2m.Path{lwm2m.MustParsePath("/3/0/3"), lwm2m.MustParsePath("/5/0/3"), lwm2m.MustParsePath("/5/0/5")}
	tests := []struct {
		name   string
		target string
		body   string
		status int
		code   string // error code
		want   dm.Request
	}{
		{name: "read three paths", target: dev + "/read", body: `{"paths":["/3/0/3","/5/0/3","/5/0/5"]}`, status: 200,
			want: dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: status}},
		{name: "read with format", target: dev + "/read?format=senml-json", body: `{"paths":["/3/0/3"]}`, status: 200,
			want: dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Paths: status[:1], Format: ptr(lwm2m.FormatSenMLJSON)}},
		{name: "read in TLV", target: dev + "/read?format=tlv", body: `{"paths":["/3/0/3"]}`, status: 400, code: codeInvalidFormat},
		{name: "read no paths", target: dev + "/read", body: `{"paths":[]}`, status: 400, code: codeInvalidJSON},
		{name: "read the root", target: dev + "/read", body: `{"paths":["/"]}`, status: 400, code: codeInvalidPath},
		{name: "read a bad path", target: dev + "/read", body: `{"paths":["/3/x"]}`, status: 400, code: codeInvalidPath},
		{name: "read unknown field", target: dev + "/read", body: `{"path":["/3/0/3"]}`, status: 400, code: codeInvalidJSON},
		{name: "write two objects", target: dev + "/write", body: `{"records":[{"path":"/1/0/1","value":300},{"path":"/3/0/14","value":"+02"}]}`, status: 200,
			want: dm.Request{Op: dm.OpWriteComposite, Path: lwm2m.RootPath,
				Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Unsigned(300)), rec("/3/0/14", lwm2m.String("+02"))}}},
		{name: "write an instance", target: dev + "/write", body: `{"records":[{"path":"/1/0","value":1}]}`, status: 400, code: codeInvalidPath},
		{name: "write a single value", target: dev + "/write", body: `{"value":1}`, status: 400, code: codeInvalidPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			env.op.result = &dm.Result{Code: "2.05"}
			r := env.do(t, http.MethodPost, tt.target, tt.body, "Content-Type", "application/json")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				var e struct {
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				_ = json.Unmarshal(r.body, &e)
				if e.Error.Code != tt.code {
					t.Fatalf("error %s, want %s: %s", e.Error.Code, tt.code, r.body)
				}
				if n := len(env.op.calls); n != 0 {
					t.Fatalf("%d calls reached the device", n)
				}
				return
			}
			call := env.op.onlyCall(t)
			assertRequest(t, call.req, tt.want)
			if !slices.Equal(call.req.Paths, tt.want.Paths) {
				t.Fatalf("paths %v, want %v", call.req.Paths, tt.want.Paths)
			}
		})
	}
}

// A read-only token may read composite, not write.
func TestCompositeRoles(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.op.result = &dm.Result{Code: "2.05"}
	const dev = "/api/v1/devices/urn:imei:356938035643809/composite"
	auth := bearer(env.auth.secrets[apitoken.RoleSupport])
	if r := env.do(t, http.MethodPost, dev+"/read", `{"paths":["/3/0/3"]}`, "Content-Type", "application/json", "Authorization", auth); r.status != 200 {
		t.Fatalf("support read: %d %s", r.status, r.body)
	}
	if r := env.do(t, http.MethodPost, dev+"/write", `{"records":[{"path":"/1/0/1","value":3}]}`, "Content-Type", "application/json", "Authorization", auth); r.status != 403 {
		t.Fatalf("support write: %d %s", r.status, r.body)
	}
}

// Observe-Composite: POST takes the paths; DELETE cancels with the paths the stored observation
// holds, and is 404 without one.
func TestCompositeObserveRequests(t *testing.T) {
	const dev = "/api/v1/devices/urn:imei:356938035643809/composite/observe"
	status := []lwm2m.Path{lwm2m.MustParsePath("/5/0/3"), lwm2m.MustParsePath("/5/0/5")}
	env := newTestEnv(t, Config{})
	env.op.result = &dm.Result{Code: "2.05"}
	if r := env.do(t, http.MethodPost, dev, `{"paths":["/5/0/3","/5/0/5"]}`, "Content-Type", "application/json"); r.status != 200 {
		t.Fatalf("observe: %d %s", r.status, r.body)
	}
	call := env.op.onlyCall(t)
	if call.req.Op != dm.OpObserveComposite || !slices.Equal(call.req.Paths, status) {
		t.Fatalf("observe request %+v", call.req)
	}

	env = newTestEnv(t, Config{})
	if r := env.do(t, http.MethodDelete, dev, ""); r.status != 404 {
		t.Fatalf("cancel without an observation: %d %s", r.status, r.body)
	}
	env.obs.obs = []*observe.Observation{
		{Endpoint: "urn:imei:356938035643809", Path: lwm2m.MustParsePath("/3/0/13"), Token: []byte{1}},
		{Endpoint: "urn:imei:356938035643809", Path: lwm2m.RootPath, Paths: status, Token: []byte{2}, Format: lwm2m.FormatSenMLCBOR},
	}
	if r := env.do(t, http.MethodDelete, dev, ""); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	call = env.op.onlyCall(t)
	if call.req.Op != dm.OpCancelObserveComposite || !slices.Equal(call.req.Paths, status) || call.req.Format == nil || *call.req.Format != lwm2m.FormatSenMLCBOR {
		t.Fatalf("cancel request %+v", call.req)
	}
}
