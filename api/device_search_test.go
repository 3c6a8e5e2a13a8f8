package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

func TestParseFirmwareFilter(t *testing.T) {
	tests := []struct {
		in, op, version string
	}{
		{"1.4.2", "", "1.4.2"},
		{"  1.4.2 ", "", "1.4.2"},
		{"<1.4.2", "<", "1.4.2"},
		{"< 1.4.2", "<", "1.4.2"},
		{"<= 1.4.2", "<=", "1.4.2"},
		{">1.9", ">", "1.9"},
		{">= v1.10.0-rc.1", ">=", "v1.10.0-rc.1"},
		{"= 1.4.2", "=", "1.4.2"},
		{"== 1.4.2", "=", "1.4.2"},
		{"!= 1.4.2", "!=", "1.4.2"},
		{"firmware < 1.4.2", "<", "1.4.2"},
		{"Firmware<1.4.2", "<", "1.4.2"},
		{"firmware 1.4.2", "", "1.4.2"},
		{"= nightly-2024", "=", "nightly-2024"}, // = and != take any text
		{"!= build_7", "!=", "build_7"},
		{"firmware2", "", "firmware2"}, // a version that starts like the word
	}
	for _, tc := range tests {
		op, v, err := parseFirmwareFilter(tc.in)
		if err != nil || op != tc.op || v != tc.version {
			t.Errorf("parseFirmwareFilter(%q) = %q, %q, %v; want %q, %q", tc.in, op, v, err, tc.op, tc.version)
		}
	}
	for _, in := range []string{
		"", "   ", "<", "firmware", "firmware <", "< 1.4 2", "<< 1.4", "<= >= 1.4", "< nightly", ">= 1.x",
		"! 1.0", "!1.0", "= =1.0", strings.Repeat("1", maxFirmwareFilterLen+1), "1.4.2 1.4.3", "< 1.2.3.4.5",
	} {
		if op, v, err := parseFirmwareFilter(in); err == nil {
			t.Errorf("parseFirmwareFilter(%q) = %q, %q; want an error", in, op, v)
		}
	}
}

// FuzzParseFirmwareFilter: the parser never panics, and what it accepts is a known comparison
// and a version without white space that, for ordering comparisons, has a key.
func FuzzParseFirmwareFilter(f *testing.F) {
	for _, s := range []string{"1.4.2", "< 1.4.2", "firmware >= v1.10", "!= x", "<=", "firmware", "=\u00e41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		op, v, err := parseFirmwareFilter(s)
		if err != nil {
			return
		}
		if v == "" || strings.ContainsAny(v, " \t\r\n") || len(v) > maxFirmwareFilterLen {
			t.Fatalf("parseFirmwareFilter(%q) accepted version %q", s, v)
		}
		switch op {
		case "", "=", "!=":
		case "<", "<=", ">", ">=":
			if _, ok := registration.VersionKey(v); !ok {
				t.Fatalf("parseFirmwareFilter(%q) orders by %q, which has no key", s, v)
			}
		default:
			t.Fatalf("parseFirmwareFilter(%q) returned op %q", s, op)
		}
	})
}

func TestParseSort(t *testing.T) {
	for in, want := range map[string]struct {
		k    registration.SortKey
		desc bool
	}{
		"": {"", false}, "endpoint": {registration.SortEndpoint, false}, "-firmware": {registration.SortFirmware, true},
		"model": {registration.SortModel, false}, "-last_seen": {registration.SortLastSeen, true},
	} {
		k, desc, err := parseSort(in)
		if err != nil || k != want.k || desc != want.desc {
			t.Errorf("parseSort(%q) = %q, %v, %v", in, k, desc, err)
		}
	}
	for _, in := range []string{"-", "--model", "Model", "labels", "firmware,model", " model"} {
		if _, _, err := parseSort(in); err == nil {
			t.Errorf("parseSort(%q): want an error", in)
		}
	}
}

type deviceListOut struct {
	Devices []struct {
		Endpoint        string          `json:"endpoint"`
		FirmwareVersion string          `json:"firmware_version"`
		LastUpdate      *lastUpdateJSON `json:"last_update"`
	} `json:"devices"`
	Total      *int   `json:"total"`
	NextCursor string `json:"next_cursor"`
}

func (env *storeEnv) devices(t *testing.T, query string) deviceListOut {
	t.Helper()
	r := env.do(t, http.MethodGet, "/api/v1/devices?"+query, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /devices?%s: %d %s", query, r.status, r.body)
	}
	var out deviceListOut
	decodeJSON(t, r.body, &out)
	return out
}

func (env *storeEnv) saveDevices(t *testing.T, versions map[string]string) {
	t.Helper()
	for ep, v := range versions {
		if err := env.store.SaveRegistration(context.Background(), &registration.Registration{Endpoint: ep, ID: ep,
			FirmwareVersion: v, Model: "X", Lifetime: 300, RegisteredAt: testNow, UpdatedAt: testNow, LastSeen: testNow}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeviceListSearch: version comparisons, the total, sorting with paging, and the last update
// of each device, over a real store.
func TestDeviceListSearch(t *testing.T) {
	env := newStoreEnv(t)
	env.saveDevices(t, map[string]string{"a": "1.9.0", "b": "1.10.0", "c": "1.4.2", "d": "1.4.1", "e": "nightly", "f": "2.0"})
	img := env.upload(t, `{"name":"fw","version":"2.0.0","target":{"model":"X"}}`, []byte("x"), nil)
	ctx := context.Background()
	for i, ep := range []string{"a", "b"} {
		j, tr := fwupdate.NewJob(fmt.Sprintf("job-%d", i), ep, fwupdate.ImageRef{ID: img.ID, Version: "2.0.0", Size: 1},
			fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", testNow)
		if err := env.store.CreateJob(ctx, j, tr); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			tr, err := j.Apply(fwupdate.StateFailed, testNow.Add(time.Minute), "the device did not come online")
			if err != nil {
				t.Fatal(err)
			}
			if err := env.store.SaveTransition(ctx, j, tr); err != nil {
				t.Fatal(err)
			}
		}
	}

	eps := func(out deviceListOut) []string {
		var s []string
		for _, d := range out.Devices {
			s = append(s, d.Endpoint)
		}
		return s
	}
	for _, tc := range []struct {
		firmware string
		want     []string
	}{
		{"< 1.4.2", []string{"d"}},
		{"firmware >= 1.9", []string{"a", "b", "f"}}, // 1.10.0 is newer than 1.9.0
		{"> 1.9.0", []string{"b", "f"}},
		{"1.4.2", []string{"c"}},
		{"!= 1.4.2", []string{"a", "b", "d", "e", "f"}},
		{"= nightly", []string{"e"}},
	} {
		out := env.devices(t, "firmware="+url.QueryEscape(tc.firmware))
		if got := eps(out); !slices.Equal(got, tc.want) || out.Total == nil || *out.Total != len(tc.want) {
			t.Errorf("firmware %q: %q (total %v), want %q", tc.firmware, got, out.Total, tc.want)
		}
	}

	// Two per page, by firmware descending: the total counts every page.
	var got []string
	q := "sort=-firmware&limit=2"
	for range 10 {
		out := env.devices(t, q)
		if out.Total == nil || *out.Total != 6 {
			t.Fatalf("total %v, want 6", out.Total)
		}
		got = append(got, eps(out)...)
		if out.NextCursor == "" {
			break
		}
		q = "sort=-firmware&limit=2&cursor=" + out.NextCursor
	}
	if want := []string{"f", "b", "a", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("sort=-firmware pages: %q, want %q", got, want)
	}

	out := env.devices(t, "prefix=a")
	if len(out.Devices) != 1 || out.Devices[0].LastUpdate == nil || out.Devices[0].LastUpdate.State != "queued" {
		t.Errorf("device a: %+v, want its queued update", out.Devices)
	}
	out = env.devices(t, "prefix=b")
	if lu := out.Devices[0].LastUpdate; lu == nil || lu.State != "failed" || lu.Reason != "the device did not come online" || lu.ImageVersion != "2.0.0" {
		t.Errorf("device b last update %+v, want the failed one", lu)
	}
	if out := env.devices(t, "prefix=c"); out.Devices[0].LastUpdate != nil {
		t.Errorf("device c has no update, got %+v", out.Devices[0].LastUpdate)
	}

	for _, q := range []string{
		"firmware=" + url.QueryEscape("< nightly"), "firmware=" + url.QueryEscape("<"), "firmware=" + url.QueryEscape("<< 1"),
		"sort=name", "sort=--model", "sort=model&cursor=" + cursor("plain-endpoint"),
	} {
		wantError(t, env.do(t, http.MethodGet, "/api/v1/devices?"+q, ""), 400, codeInvalidQuery)
	}
}

// TestFleetOverview: GET /fleet counts versions, presence, active updates and the last day's
// failures from a real store.
func TestFleetOverview(t *testing.T) {
	env := newStoreEnv(t)
	r := env.do(t, http.MethodGet, "/api/v1/fleet", "")
	jsonEqual(t, r.body, `{"devices":{"known":0,"online":0,"online_share":0},"versions":[],"updates":{"in_progress":0,"by_state":{}},
		"failures":{"since":"2026-02-28T12:00:00Z","total":0,"by_reason":[]}}`)

	env.saveDevices(t, map[string]string{"a": "1.0", "b": "1.0", "c": "2.0", "d": "2.0"})
	// d expired long ago: known, not online.
	d, err := env.store.GetRegistration(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	d.UpdatedAt = testNow.Add(-time.Hour)
	if err := env.store.SaveRegistration(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	img := env.upload(t, `{"name":"fw","version":"2.0.0","target":{"model":"X"}}`, []byte("x"), nil)
	ctx := context.Background()
	for i, c := range []struct {
		ep     string
		state  fwupdate.State
		result int
		at     time.Duration
	}{
		{"a", fwupdate.StateQueued, 0, 0},
		{"b", fwupdate.StateFailed, 5, -time.Hour},
		{"c", fwupdate.StateFailed, 5, -2 * time.Hour},
		{"d", fwupdate.StateFailed, 5, -48 * time.Hour}, // older than a day
	} {
		j, tr := fwupdate.NewJob(fmt.Sprintf("job-%d", i), c.ep, fwupdate.ImageRef{ID: img.ID, Version: "2.0.0", Size: 1},
			fwupdate.MethodPull, fwupdate.DefaultPolicy(), "", testNow.Add(c.at-time.Minute))
		if err := env.store.CreateJob(ctx, j, tr); err != nil {
			t.Fatal(err)
		}
		if c.state == fwupdate.StateFailed {
			j.DeviceResult = c.result
			tr, err := j.Apply(fwupdate.StateFailed, testNow.Add(c.at), "integrity check failed")
			if err != nil {
				t.Fatal(err)
			}
			if err := env.store.SaveTransition(ctx, j, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	r = env.do(t, http.MethodGet, "/api/v1/fleet", "")
	jsonEqual(t, r.body, `{"devices":{"known":4,"online":3,"online_share":0.75},
		"versions":[{"firmware_version":"1.0","model":"X","devices":2,"online":2},{"firmware_version":"2.0","model":"X","devices":2,"online":1}],
		"updates":{"in_progress":1,"by_state":{"queued":1}},
		"failures":{"since":"2026-02-28T12:00:00Z","total":2,"by_reason":[{"device_result":5,
			"result_text":"integrity check failure for new downloaded package","reason":"integrity check failed","jobs":2}]}}`)

	// Roles: every reader; ci may not.
	for role, status := range map[apitoken.Role]int{apitoken.RoleSupport: 200, apitoken.RoleRelease: 200, apitoken.RoleCI: 403} {
		r := env.do(t, http.MethodGet, "/api/v1/fleet", "", "Authorization", bearer(env.auth.secrets[role]))
		if r.status != status {
			t.Errorf("GET /fleet as %s: %d, want %d", role, r.status, status)
		}
	}
	// Without WithFleet: 404.
	plain, _ := newImageEnv(t, 0)
	wantError(t, plain.do(t, http.MethodGet, "/api/v1/fleet", ""), 404, codeNotFound)
}
