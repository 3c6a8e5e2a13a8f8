package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
)

func rec(path string, v lwm2m.Value) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v}
}

func ptr[T any](v T) *T { return &v }

// TestObjectRequests checks the dm.Request each route builds from URL, query and body.
func TestObjectRequests(t *testing.T) {
	const dev = "/api/v1/devices/urn:imei:356938035643809/objects"
	tests := []struct {
		name   string
		method string
		target string
		body   string
		want   dm.Request
	}{
		{name: "read instance", method: "GET", target: dev + "/3/0",
			want: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0")}},
		{name: "read with format", method: "GET", target: dev + "/3/0/0?format=senml-json",
			want: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/0"), Format: ptr(lwm2m.FormatSenMLJSON)}},
		{name: "read text format is not the default", method: "GET", target: dev + "/3/0/0?format=text",
			want: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/0"), Format: ptr(lwm2m.FormatText)}},
		{name: "read resource instance", method: "GET", target: dev + "/3/0/7/1",
			want: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0/7/1")}},
		{name: "trailing slash", method: "GET", target: dev + "/3/0/",
			want: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0")}},
		{name: "discover", method: "GET", target: dev + "/5/discover",
			want: dm.Request{Op: dm.OpDiscover, Path: lwm2m.MustParsePath("/5")}},
		{name: "write single value typed by the model", method: "PUT", target: dev + "/1/0/1", body: `{"value":300}`,
			want: dm.Request{Op: dm.OpWrite, Path: lwm2m.MustParsePath("/1/0/1"), Records: []lwm2m.Record{rec("/1/0/1", lwm2m.Unsigned(300))}}},
		{name: "write explicit type overrides the model", method: "PUT", target: dev + "/3/0/14", body: `{"value":3600,"type":"integer"}`,
			want: dm.Request{Op: dm.OpWrite, Path: lwm2m.MustParsePath("/3/0/14"), Records: []lwm2m.Record{rec("/3/0/14", lwm2m.Integer(3600))}}},
		{name: "write instance records of every type", method: "PUT", target: dev + "/16/0?format=tlv", body: `{"records":[
				{"path":"/16/0/0","value":"3:0"},
				{"path":"/16/0/1","value":"</3/0>"},
				{"path":"/16/0/2","value":"hello","type":"string"},
				{"path":"/16/0/3","value":-7,"type":"integer"},
				{"path":"/16/0/4","value":18446744073709551615,"type":"unsigned"},
				{"path":"/16/0/5","value":2.5,"type":"float"},
				{"path":"/16/0/6","value":true,"type":"boolean"},
				{"path":"/16/0/7","value":"AAEC/w==","type":"opaque"},
				{"path":"/16/0/8","value":1700000000,"type":"time"},
				{"path":"/16/0/9","value":"2026-03-01T12:00:00Z","type":"time"},
				{"path":"/16/0/10/3","value":"NaN","type":"float"}]}`,
			want: dm.Request{Op: dm.OpWrite, Path: lwm2m.MustParsePath("/16/0"), Format: ptr(lwm2m.FormatTLV), Records: []lwm2m.Record{
				rec("/16/0/0", lwm2m.Objlnk(3, 0)),
				rec("/16/0/1", lwm2m.Corelnk("</3/0>")),
				rec("/16/0/2", lwm2m.String("hello")),
				rec("/16/0/3", lwm2m.Integer(-7)),
				rec("/16/0/4", lwm2m.Unsigned(math.MaxUint64)),
				rec("/16/0/5", lwm2m.Float(2.5)),
				rec("/16/0/6", lwm2m.Boolean(true)),
				rec("/16/0/7", lwm2m.Opaque([]byte{0, 1, 2, 255})),
				rec("/16/0/8", lwm2m.Time(time.Unix(1700000000, 0))),
				rec("/16/0/9", lwm2m.Time(testNow)),
				rec("/16/0/10/3", lwm2m.Float(math.NaN())),
			}}},
		{name: "partial update, types guessed for an unknown object", method: "PATCH", target: dev + "/10241/0",
			body: `{"records":[{"path":"/10241/0/1","value":"x"},{"path":"/10241/0/2","value":5},{"path":"/10241/0/3","value":5.0},{"path":"/10241/0/4","value":false}]}`,
			want: dm.Request{Op: dm.OpWritePartial, Path: lwm2m.MustParsePath("/10241/0"), Records: []lwm2m.Record{
				rec("/10241/0/1", lwm2m.String("x")), rec("/10241/0/2", lwm2m.Integer(5)),
				rec("/10241/0/3", lwm2m.Float(5)), rec("/10241/0/4", lwm2m.Boolean(false)),
			}}},
		{name: "write attributes", method: "PUT", target: dev + "/3303/0/5700/attributes", body: `{"pmin":10,"pmax":60,"gt":30.5,"st":0.5,"clear":["lt","epmin"]}`,
			want: dm.Request{Op: dm.OpWriteAttributes, Path: lwm2m.MustParsePath("/3303/0/5700"), Attributes: &dm.Attributes{
				Pmin: ptr[uint32](10), Pmax: ptr[uint32](60), Gt: ptr(30.5), St: ptr(0.5), Clear: []string{"lt", "epmin"}}}},
		{name: "execute without body", method: "POST", target: dev + "/3/0/4/execute",
			want: dm.Request{Op: dm.OpExecute, Path: lwm2m.MustParsePath("/3/0/4")}},
		{name: "execute with args", method: "POST", target: dev + "/5/0/2/execute", body: `{"args":"0='now'"}`,
			want: dm.Request{Op: dm.OpExecute, Path: lwm2m.MustParsePath("/5/0/2"), Args: "0='now'"}},
		{name: "create", method: "POST", target: dev + "/3303", body: `{"records":[{"path":"/3303/1/5701","value":"Cel"}]}`,
			want: dm.Request{Op: dm.OpCreate, Path: lwm2m.MustParsePath("/3303"), Records: []lwm2m.Record{rec("/3303/1/5701", lwm2m.String("Cel"))}}},
		{name: "create empty", method: "POST", target: dev + "/3303",
			want: dm.Request{Op: dm.OpCreate, Path: lwm2m.MustParsePath("/3303")}},
		{name: "delete", method: "DELETE", target: dev + "/3303/1",
			want: dm.Request{Op: dm.OpDelete, Path: lwm2m.MustParsePath("/3303/1")}},
		{name: "observe", method: "POST", target: dev + "/3303/0/5700/observe?format=senml-cbor",
			want: dm.Request{Op: dm.OpObserve, Path: lwm2m.MustParsePath("/3303/0/5700"), Format: ptr(lwm2m.FormatSenMLCBOR)}},
		{name: "cancel observe", method: "DELETE", target: dev + "/3303/0/5700/observe",
			want: dm.Request{Op: dm.OpCancelObserve, Path: lwm2m.MustParsePath("/3303/0/5700")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			r := env.do(t, tt.method, tt.target, tt.body, "Content-Type", "application/json")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			call := env.op.onlyCall(t)
			if call.endpoint != "urn:imei:356938035643809" {
				t.Fatalf("endpoint %q", call.endpoint)
			}
			assertRequest(t, call.req, tt.want)
		})
	}
}

func assertRequest(t *testing.T, got, want dm.Request) {
	t.Helper()
	if got.Op != want.Op || got.Path != want.Path || got.Args != want.Args {
		t.Fatalf("request op %s path %s args %q, want %s %s %q", got.Op, got.Path, got.Args, want.Op, want.Path, want.Args)
	}
	if (got.Format == nil) != (want.Format == nil) || got.Format != nil && *got.Format != *want.Format {
		t.Fatalf("format %v, want %v", fmtPtr(got.Format), fmtPtr(want.Format))
	}
	if !reflect.DeepEqual(got.Attributes, want.Attributes) {
		t.Fatalf("attributes %+v, want %+v", got.Attributes, want.Attributes)
	}
	if len(got.Records) != len(want.Records) {
		t.Fatalf("records %v, want %v", got.Records, want.Records)
	}
	for i := range got.Records {
		g, w := got.Records[i], want.Records[i]
		if g.Path != w.Path || !g.Value.Equal(w.Value) {
			t.Fatalf("record %d: %s=%v, want %s=%v", i, g.Path, g.Value, w.Path, w.Value)
		}
	}
}

func fmtPtr(f *lwm2m.ContentFormat) string {
	if f == nil {
		return "nil"
	}
	return f.Name()
}

// TestObjectBadRequests: everything refused before the device is bothered.
func TestObjectBadRequests(t *testing.T) {
	const dev = "/api/v1/devices/dev-a/objects"
	tests := []struct {
		name   string
		method string
		target string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"unknown format", "GET", dev + "/3/0?format=xml", "", "", 400, codeInvalidFormat},
		{"link is not a read format", "GET", dev + "/3/0?format=link", "", "", 400, codeInvalidFormat},
		{"non-numeric id", "GET", dev + "/3/x/1", "", "", 400, codeInvalidPath},
		{"non-numeric last id is an unknown action", "GET", dev + "/3/0/x", "", "", 404, codeNotFound},
		{"id too large", "GET", dev + "/3/70000", "", "", 400, codeInvalidPath},
		{"reserved id", "GET", dev + "/3/65535", "", "", 400, codeInvalidPath},
		{"five levels", "GET", dev + "/3/0/7/1/2", "", "", 400, codeInvalidPath},
		{"escaped slash is not a separator", "GET", dev + "/3/0%2F1", "", "", 400, codeInvalidPath},
		{"leading zero", "GET", dev + "/03", "", "", 400, codeInvalidPath},
		{"no path", "GET", dev + "/", "", "", 400, codeInvalidPath},
		{"no path, action only", "GET", dev + "/discover", "", "", 400, codeInvalidPath},
		{"discover too deep", "GET", dev + "/3/0/7/1/discover", "", "", 400, codeInvalidPath},
		{"write object", "PUT", dev + "/3", `{"records":[{"path":"/3/0/14","value":"x"}]}`, "", 400, codeInvalidPath},
		{"execute instance", "POST", dev + "/3/0/execute", "", "", 400, codeInvalidPath},
		{"create on instance", "POST", dev + "/3303/1", `{"records":[]}`, "", 400, codeInvalidPath},
		{"delete object", "DELETE", dev + "/3303", "", "", 400, codeInvalidPath},
		{"unknown action", "POST", dev + "/3/0/4/frobnicate", "", "", 404, codeNotFound},
		{"wrong method for action", "GET", dev + "/3/0/4/execute", "", "", 405, codeMethodNotAllowed},
		{"invalid JSON", "PUT", dev + "/1/0/1", `{"value":`, "", 400, codeInvalidJSON},
		{"not an object", "PUT", dev + "/1/0/1", `[1,2]`, "", 400, codeInvalidJSON},
		{"unknown field", "PUT", dev + "/1/0/1", `{"value":1,"colour":"red"}`, "", 400, codeInvalidJSON},
		{"unknown record field", "PUT", dev + "/1/0", `{"records":[{"path":"/1/0/1","value":1,"unit":"s"}]}`, "", 400, codeInvalidJSON},
		{"trailing data", "PUT", dev + "/1/0/1", `{"value":1} {"value":2}`, "", 400, codeInvalidJSON},
		{"empty body", "PUT", dev + "/1/0/1", ``, "", 400, codeInvalidJSON},
		{"records and value", "PUT", dev + "/1/0/1", `{"value":1,"records":[{"path":"/1/0/1","value":1}]}`, "", 400, codeInvalidJSON},
		{"no records", "PUT", dev + "/1/0", `{"records":[]}`, "", 400, codeInvalidJSON},
		{"value on an instance", "PUT", dev + "/1/0", `{"value":1}`, "", 400, codeInvalidPath},
		{"record outside target", "PUT", dev + "/1/0", `{"records":[{"path":"/1/1/1","value":1}]}`, "", 400, codeInvalidPath},
		{"record not a resource", "PUT", dev + "/1/0", `{"records":[{"path":"/1/0","value":1}]}`, "", 400, codeInvalidPath},
		{"record bad path", "PUT", dev + "/1/0", `{"records":[{"path":"one","value":1}]}`, "", 400, codeInvalidPath},
		{"value does not fit model type", "PUT", dev + "/1/0/1", `{"value":-5}`, "", 400, codeInvalidValue},
		{"string for integer", "PUT", dev + "/3/0/9", `{"value":"5"}`, "", 400, codeInvalidValue},
		{"unknown type name", "PUT", dev + "/3/0/9", `{"value":5,"type":"decimal"}`, "", 400, codeInvalidValue},
		{"executable resource", "PUT", dev + "/3/0/4", `{"value":1}`, "", 400, codeInvalidValue},
		{"null value", "PUT", dev + "/3/0/9", `{"value":null}`, "", 400, codeInvalidValue},
		{"bad base64", "PUT", dev + "/5/0/0", `{"value":"not base64!"}`, "", 400, codeInvalidValue},
		{"bad objlnk", "PUT", dev + "/16/0/0", `{"value":"3-0"}`, "", 400, codeInvalidValue},
		{"bad time", "PUT", dev + "/3/0/13", `{"value":"yesterday"}`, "", 400, codeInvalidValue},
		{"fraction for time", "PUT", dev + "/3/0/13", `{"value":1.5}`, "", 400, codeInvalidValue},
		{"array value", "PUT", dev + "/10241/0/1", `{"value":[1]}`, "", 400, codeInvalidValue},
		{"attributes empty", "PUT", dev + "/3/0/9/attributes", `{}`, "", 400, codeInvalidJSON},
		{"attributes clear unknown", "PUT", dev + "/3/0/9/attributes", `{"clear":["max"]}`, "", 400, codeInvalidValue},
		{"attributes set and clear", "PUT", dev + "/3/0/9/attributes", `{"pmin":1,"clear":["pmin"]}`, "", 400, codeInvalidValue},
		{"attributes negative pmin", "PUT", dev + "/3/0/9/attributes", `{"pmin":-1}`, "", 400, codeInvalidJSON},
		{"execute unknown field", "POST", dev + "/3/0/4/execute", `{"arguments":"x"}`, "", 400, codeInvalidJSON},
		{"form body", "PUT", dev + "/1/0/1", `value=1`, "application/x-www-form-urlencoded", 415, codeUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			var hdr []string
			if tt.ctype != "" {
				hdr = []string{"Content-Type", tt.ctype}
			}
			r := env.do(t, tt.method, tt.target, tt.body, hdr...)
			wantError(t, r, tt.status, tt.code)
			if n := env.op.callCount(); n != 0 {
				t.Fatalf("Operator.Do called %d times for a bad request", n)
			}
		})
	}
}

func TestMethodNotAllowedAllowHeader(t *testing.T) {
	env := newTestEnv(t, Config{})
	r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a/objects/3/0/4/execute", "")
	wantError(t, r, 405, codeMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "POST" {
		t.Fatalf("Allow %q, want POST", got)
	}
	r = env.do(t, http.MethodPatch, "/api/v1/devices/dev-a/objects/3/0/13/observe", "")
	wantError(t, r, 405, codeMethodNotAllowed)
	if got := r.header.Get("Allow"); got != "POST, DELETE" {
		t.Fatalf("Allow %q, want POST, DELETE", got)
	}
}

// TestDeviceErrors maps every error the Operator can give to its status and stable code.
func TestDeviceErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		deviceCode string
		msg        string
	}{
		{"not registered", registration.ErrNotFound, 404, codeNotFound, "", "device urn:imei:1 is not registered"},
		{"not registered, wrapped", fmt.Errorf("dm: read: %w", registration.ErrNotFound), 404, codeNotFound, "", "device urn:imei:1 is not registered"},
		{"offline", dm.ErrOffline, 409, codeDeviceOffline, "", "device urn:imei:1 is offline"},
		{"timeout", fmt.Errorf("read /3/0: %w", dm.ErrTimeout), 504, codeDeviceTimeout, "", "device urn:imei:1 did not answer in time"},
		{"shutting down", fmt.Errorf("read /3/0: %w", dm.ErrUnavailable), 503, codeUnavailable, "", "lwota is starting or shutting down; try again"},
		{"queue full", dm.ErrQueueFull, 429, codeQueueFull, "", "device urn:imei:1 has too many queued requests"},
		{"invalid", fmt.Errorf("%w: device does not support senml-json", dm.ErrInvalid), 400, codeInvalidRequest, "", "invalid request: device does not support senml-json"},
		{"device 4.04", &dm.DeviceError{Code: "4.04"}, 404, codeDeviceError, "4.04", "device urn:imei:1 answered 4.04"},
		{"device 4.05", &dm.DeviceError{Code: "4.05", Msg: "read-only"}, 405, codeDeviceError, "4.05", "device urn:imei:1 answered 4.05: read-only"},
		{"device 4.00", fmt.Errorf("write: %w", &dm.DeviceError{Code: "4.00"}), 400, codeDeviceError, "4.00", "device urn:imei:1 answered 4.00"},
		{"device 4.01", &dm.DeviceError{Code: "4.01"}, 502, codeDeviceError, "4.01", "device urn:imei:1 answered 4.01"},
		{"device 5.00", &dm.DeviceError{Code: "5.00"}, 502, codeDeviceError, "5.00", "device urn:imei:1 answered 5.00"},
		{"anything else", errors.New("store: disk full"), 500, codeInternal, "", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			env.op.result = nil
			env.op.err = tt.err
			r := env.do(t, http.MethodGet, "/api/v1/devices/urn%3Aimei%3A1/objects/3/0", "")
			msg := wantError(t, r, tt.status, tt.code)
			if msg != tt.msg {
				t.Fatalf("message %q, want %q", msg, tt.msg)
			}
			var body errorBody
			decodeJSON(t, r.body, &body)
			if body.Error.DeviceCode != tt.deviceCode {
				t.Fatalf("device_code %q, want %q", body.Error.DeviceCode, tt.deviceCode)
			}
		})
	}
}

func TestObjectResults(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		result *dm.Result
		want   string
	}{
		{name: "read", method: "GET", path: "/3/0", result: &dm.Result{Code: "2.05", Format: lwm2m.FormatTLV, Records: []lwm2m.Record{
			rec("/3/0/0", lwm2m.String("ACME")),
			rec("/3/0/9", lwm2m.Integer(87)),
			rec("/3/0/13", lwm2m.Time(time.Unix(1700000000, 0))),
			rec("/3/0/16", lwm2m.Unsigned(7)),
			rec("/3/0/17", lwm2m.Float(-0.25)),
			rec("/3/0/18", lwm2m.Float(math.Inf(1))),
			rec("/3/0/19", lwm2m.Boolean(true)),
			rec("/3/0/20", lwm2m.Opaque([]byte("hi"))),
			rec("/3/0/21", lwm2m.Objlnk(3, 0)),
			rec("/3/0/22", lwm2m.Corelnk("</3/0>")),
			{Path: lwm2m.MustParsePath("/3/0/23"), Value: lwm2m.Integer(1), Time: testNow},
		}}, want: `{"code":"2.05","format":"tlv","records":[
			{"path":"/3/0/0","type":"string","value":"ACME"},
			{"path":"/3/0/9","type":"integer","value":87},
			{"path":"/3/0/13","type":"time","value":1700000000},
			{"path":"/3/0/16","type":"unsigned","value":7},
			{"path":"/3/0/17","type":"float","value":-0.25},
			{"path":"/3/0/18","type":"float","value":"Infinity"},
			{"path":"/3/0/19","type":"boolean","value":true},
			{"path":"/3/0/20","type":"opaque","value":"aGk="},
			{"path":"/3/0/21","type":"objlnk","value":"3:0"},
			{"path":"/3/0/22","type":"corelnk","value":"</3/0>"},
			{"path":"/3/0/23","type":"integer","value":1,"time":"2026-03-01T12:00:00Z"}]}`},
		{name: "text format named", method: "GET", path: "/3/0/0", result: &dm.Result{Code: "2.05", Format: lwm2m.FormatText,
			Records: []lwm2m.Record{rec("/3/0/0", lwm2m.String("ACME"))}},
			want: `{"code":"2.05","format":"text","records":[{"path":"/3/0/0","type":"string","value":"ACME"}]}`},
		{name: "discover", method: "GET", path: "/3/discover", result: &dm.Result{Code: "2.05", Format: lwm2m.FormatLinkFormat, Links: "</3>,</3/0/1>"},
			want: `{"code":"2.05","format":"link","links":"</3>,</3/0/1>"}`},
		{name: "write", method: "PUT", path: "/3/0/14", result: &dm.Result{Code: "2.04"}, want: `{"code":"2.04"}`},
		{name: "create", method: "POST", path: "/3303", result: &dm.Result{Code: "2.01", Location: "/3303/1"}, want: `{"code":"2.01","location":"/3303/1"}`},
		{name: "undecodable", method: "GET", path: "/3/0/0", result: &dm.Result{Code: "2.05", Format: 1234, Payload: []byte{1, 2}},
			want: `{"code":"2.05","format":"1234","payload":"AQI="}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			env.op.result = tt.result
			body := ""
			if tt.method == "PUT" {
				body = `{"value":"+01:00","type":"string"}`
			}
			r := env.do(t, tt.method, "/api/v1/devices/dev-a/objects"+tt.path, body)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			jsonEqual(t, r.body, tt.want)
		})
	}
}

// TestQueuedRequest: a sleeping device's request is accepted (202), then looked up by id.
func TestQueuedRequest(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.op.result = nil
	env.op.pending = &dm.Pending{ID: "q/1", Endpoint: "urn:imei:356938035643809", State: dm.PendingQueued,
		Request:   dm.Request{Op: dm.OpWrite, Path: lwm2m.MustParsePath("/1/0/1")},
		CreatedAt: testNow, UpdatedAt: testNow}
	r := env.do(t, http.MethodPut, "/api/v1/devices/urn:imei:356938035643809/objects/1/0/1", `{"value":60}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", r.status, r.body)
	}
	jsonEqual(t, r.body, `{"request_id":"q/1","endpoint":"urn:imei:356938035643809","state":"queued","op":"write","path":"/1/0/1",
		"attempts":0,"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z","links":{"self":"/api/v1/requests/q%2F1"}}`)
	if loc := r.header.Get("Location"); loc != "/api/v1/requests/q%2F1" {
		t.Fatalf("Location %q", loc)
	}

	done := *env.op.pending
	done.State = dm.PendingDone
	done.Result = &dm.Result{Code: "2.04"}
	failed := done
	failed.ID, failed.State, failed.Result, failed.Error, failed.Attempts = "q2", dm.PendingFailed, nil, "device answered 4.05", 1
	env.op.stored["q/1"] = &done
	env.op.stored["q2"] = &failed

	r = env.do(t, http.MethodGet, "/api/v1/requests/q%2F1", "")
	jsonEqual(t, r.body, `{"request_id":"q/1","endpoint":"urn:imei:356938035643809","state":"done","op":"write","path":"/1/0/1",
		"result":{"code":"2.04"},"attempts":0,"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z",
		"links":{"self":"/api/v1/requests/q%2F1"}}`)
	r = env.do(t, http.MethodGet, "/api/v1/requests/q2", "")
	var p pendingJSON
	decodeJSON(t, r.body, &p)
	if p.State != "failed" || p.Failure != "device answered 4.05" || p.Attempts != 1 {
		t.Fatalf("failed request rendered as %+v", p)
	}
	if msg := wantError(t, env.do(t, http.MethodGet, "/api/v1/requests/nope", ""), 404, codeNotFound); msg != "request nope does not exist" {
		t.Fatalf("message %q", msg)
	}
}

func TestOperatorWithoutOutcome(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.op.result = nil
	wantError(t, env.do(t, http.MethodGet, "/api/v1/devices/dev-a/objects/3/0", ""), 500, codeInternal)
	if !strings.Contains(env.logs.String(), "no result and no pending") {
		t.Fatalf("log does not name the cause:\n%s", env.logs)
	}
}
