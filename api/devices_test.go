package api

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
)

func TestGetDevice(t *testing.T) {
	tests := []struct {
		name     string
		target   string
		wantEP   string
		status   int
		code     string
		wantMsg  string
		storeErr error
	}{
		{name: "plain", target: "/api/v1/devices/dev-a", wantEP: "dev-a", status: 200},
		{name: "colons raw", target: "/api/v1/devices/urn:imei:356938035643809", wantEP: "urn:imei:356938035643809", status: 200},
		{name: "colons escaped", target: "/api/v1/devices/urn%3Aimei%3A356938035643809", wantEP: "urn:imei:356938035643809", status: 200},
		{name: "slash and space escaped", target: "/api/v1/devices/" + url.PathEscape("weird/name with space"), wantEP: "weird/name with space", status: 200},
		{name: "unknown", target: "/api/v1/devices/urn:imei:1", status: 404, code: codeNotFound, wantMsg: "device urn:imei:1 is not registered"},
		{name: "store fails", target: "/api/v1/devices/dev-a", status: 500, code: codeInternal, wantMsg: "internal error", storeErr: errors.New("db down")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			env.devs.err = tt.storeErr
			r := env.do(t, http.MethodGet, tt.target, "")
			if tt.code != "" {
				if msg := wantError(t, r, tt.status, tt.code); msg != tt.wantMsg {
					t.Fatalf("message %q, want %q", msg, tt.wantMsg)
				}
				return
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var d deviceJSON
			decodeJSON(t, r.body, &d)
			if d.Endpoint != tt.wantEP {
				t.Fatalf("endpoint %q, want %q", d.Endpoint, tt.wantEP)
			}
		})
	}
}

func TestGetDeviceBody(t *testing.T) {
	env := newTestEnv(t, Config{})
	r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a", "")
	jsonEqual(t, r.body, `{
		"endpoint": "dev-a", "registration_id": "r-dev-a", "online": true,
		"expires_at": "2026-03-01T12:04:00Z", "lwm2m_version": "1.1", "lifetime": 300, "binding": "U",
		"queue_mode": false, "root_path": "/", "content_formats": ["tlv", "senml-cbor", "65000"],
		"objects": [{"path": "/1/0"}, {"path": "/3/0"}, {"path": "/5", "version": "1.1"}],
		"firmware_version": "1.0.0",
		"registered_at": "2026-03-01T11:00:00Z", "updated_at": "2026-03-01T11:59:00Z", "last_seen": "2026-03-01T11:59:00Z"
	}`)
	r = env.do(t, http.MethodGet, "/api/v1/devices/dev-b", "")
	var d deviceJSON
	decodeJSON(t, r.body, &d)
	if d.Online || !d.ExpiresAt.Equal(testNow.Add(-time.Hour+300*time.Second)) {
		t.Fatalf("dev-b online=%v expires_at=%v, want offline, expired 55 minutes ago", d.Online, d.ExpiresAt)
	}
}

func TestListDevicesPagination(t *testing.T) {
	env := newTestEnv(t, Config{})
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatalf("pagination does not end")
		}
		target := "/api/v1/devices?limit=3"
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		r := env.do(t, http.MethodGet, target, "")
		if r.status != 200 {
			t.Fatalf("page %d: status %d: %s", page, r.status, r.body)
		}
		var l deviceList
		decodeJSON(t, r.body, &l)
		if len(l.Devices) > 3 {
			t.Fatalf("page %d has %d devices, limit 3", page, len(l.Devices))
		}
		for _, d := range l.Devices {
			got = append(got, d.Endpoint)
		}
		if f := env.devs.lastFilter(t); f.Limit != 4 || !f.Now.Equal(testNow) {
			t.Fatalf("filter limit %d now %v, want 4 (limit+1) and the API clock", f.Limit, f.Now)
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
	}
	want := []string{"dev-a", "dev-b", "dev-c", "dev-d", "dev-e", "urn:imei:356938035643809", "weird/name with space"}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walked %v, want %v", got, want)
		}
	}

	// An exact multiple of the page size must not promise a page that is empty.
	r := env.do(t, http.MethodGet, "/api/v1/devices?limit=7", "")
	var l deviceList
	decodeJSON(t, r.body, &l)
	if len(l.Devices) != 7 || l.NextCursor != "" {
		t.Fatalf("limit=7 of 7: %d devices, next_cursor %q; want 7 and none", len(l.Devices), l.NextCursor)
	}
}

func TestListDevicesFilters(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []string
		check func(t *testing.T, env *testEnv)
	}{
		{name: "prefix", query: "prefix=urn:imei:", want: []string{"urn:imei:356938035643809"}},
		{name: "online", query: "online=false", want: []string{"dev-b"}},
		{name: "object", query: "object=3303", want: []string{"urn:imei:356938035643809"}},
		{name: "firmware", query: "firmware=1.2.3&online=true&object=5", want: []string{"dev-c", "urn:imei:356938035643809"}},
		{name: "default page size", query: "", check: func(t *testing.T, env *testEnv) {
			if f := env.devs.lastFilter(t); f.Limit != 101 {
				t.Fatalf("limit %d, want 101", f.Limit)
			}
		}},
		{name: "limit above max is clamped", query: "limit=5000", check: func(t *testing.T, env *testEnv) {
			if f := env.devs.lastFilter(t); f.Limit != 1001 {
				t.Fatalf("limit %d, want 1001", f.Limit)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			r := env.do(t, http.MethodGet, "/api/v1/devices?"+tt.query, "")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var l deviceList
			decodeJSON(t, r.body, &l)
			if tt.want != nil {
				var got []string
				for _, d := range l.Devices {
					got = append(got, d.Endpoint)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, env)
			}
		})
	}
}

func TestListDevicesBadQuery(t *testing.T) {
	for _, q := range []string{"online=yes", "object=x", "object=65535", "object=-1", "limit=0", "limit=ten", "cursor=%21%21"} {
		t.Run(q, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			wantError(t, env.do(t, http.MethodGet, "/api/v1/devices?"+q, ""), 400, codeInvalidQuery)
		})
	}
}

func TestObservations(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.obs.obs = []*observe.Observation{{Endpoint: "urn:imei:356938035643809", Path: lwm2m.MustParsePath("/3303/0/5700"),
		Token: []byte{1, 2}, Format: lwm2m.FormatSenMLCBOR, CreatedAt: testNow}}
	env.obs.latest = []*observe.Latest{{Endpoint: "urn:imei:356938035643809", Path: lwm2m.MustParsePath("/3303/0/5700"), Time: testNow,
		Records: []lwm2m.Record{{Path: lwm2m.MustParsePath("/3303/0/5700"), Value: lwm2m.Float(21.5)}}}}
	r := env.do(t, http.MethodGet, "/api/v1/devices/urn%3Aimei%3A356938035643809/observations", "")
	jsonEqual(t, r.body, `{
		"endpoint": "urn:imei:356938035643809",
		"observations": [{"path": "/3303/0/5700", "format": "senml-cbor", "created_at": "2026-03-01T12:00:00Z"}],
		"latest": [{"path": "/3303/0/5700", "time": "2026-03-01T12:00:00Z",
			"records": [{"path": "/3303/0/5700", "type": "float", "value": 21.5}]}]
	}`)

	wantError(t, env.do(t, http.MethodGet, "/api/v1/devices/nobody/observations", ""), 404, codeNotFound)
	env.obs.err = errors.New("db down")
	wantError(t, env.do(t, http.MethodGet, "/api/v1/devices/dev-a/observations", ""), 500, codeInternal)
}
