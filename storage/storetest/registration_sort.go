package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
)

// versionFleet is one device per firmware version, some of them not versions that order.
func versionFleet(t *testing.T, s registration.Store) {
	t.Helper()
	versions := map[string]string{
		"d-190":   "1.9.0",
		"d-1100":  "1.10.0",
		"d-142":   "1.4.2",
		"d-142rc": "1.4.2-rc.1",
		"d-v141":  "v1.4.1",
		"d-14":    "1.4",
		"d-build": "2024_build7",
		"d-none":  "",
		"d-2":     "2.0.0",
	}
	for ep, v := range versions {
		mustSave(t, s, &registration.Registration{ID: "id-" + ep, Endpoint: ep, Lifetime: 60, FirmwareVersion: v,
			RegisteredAt: base, UpdatedAt: base, LastSeen: base})
	}
}

func testFirmwareCompare(t *testing.T, s registration.Store) {
	versionFleet(t, s)
	tests := []struct {
		op, v string
		want  []string
	}{
		{"<", "1.4.2", []string{"d-14", "d-142rc", "d-v141"}},
		{"<=", "1.4.2", []string{"d-14", "d-142", "d-142rc", "d-v141"}},
		{">", "1.9.0", []string{"d-1100", "d-2"}}, // 1.10.0 is newer than 1.9.0
		{">=", "v1.10", []string{"d-1100", "d-2"}},
		{"=", "1.4.2", []string{"d-142"}},
		{"", "1.4", []string{"d-14"}},                                                               // exact text: 1.4.0 would not match
		{"!=", "1.4.2", []string{"d-1100", "d-14", "d-142rc", "d-190", "d-2", "d-build", "d-v141"}}, // never the empty version
		{"=", "2024_build7", []string{"d-build"}},
		{">", "0", []string{"d-1100", "d-14", "d-142", "d-142rc", "d-190", "d-2", "d-v141"}}, // no key never orders
	}
	for _, tc := range tests {
		got, err := s.ListRegistrations(context.Background(), registration.Filter{FirmwareOp: tc.op, FirmwareVersion: tc.v})
		if err != nil {
			t.Errorf("firmware %s %s: %v", tc.op, tc.v, err)
			continue
		}
		if g := endpoints(got); !slices.Equal(g, tc.want) {
			t.Errorf("firmware %s %s = %q, want %q", tc.op, tc.v, g, tc.want)
		}
	}
	for _, f := range []registration.Filter{
		{FirmwareOp: "<", FirmwareVersion: "2024_build7"}, // nothing to order by
		{FirmwareOp: "~", FirmwareVersion: "1.0"},
	} {
		if got, err := s.ListRegistrations(context.Background(), f); err == nil {
			t.Errorf("firmware %s %s = %q, want an error", f.FirmwareOp, f.FirmwareVersion, endpoints(got))
		}
	}
}

// testRegistrationSort pages through each sort, both ways, two devices at a time: the pages
// join into the whole order, with no device twice or missing.
func testRegistrationSort(t *testing.T, s registration.Store) {
	versionFleet(t, s)
	ctx := context.Background()
	// Models and last-seen times with ties, so that the endpoint breaks them.
	for i, ep := range []string{"d-190", "d-1100", "d-142", "d-2"} {
		r := mustGet(t, s, ep)
		r.Model = []string{"M2", "M1", "M2", "M1"}[i]
		r.LastSeen = base.Add(time.Duration(i%2) * time.Minute)
		mustSave(t, s, r)
	}
	tests := []struct {
		sort registration.SortKey
		want []string
	}{
		{registration.SortEndpoint, []string{"d-1100", "d-14", "d-142", "d-142rc", "d-190", "d-2", "d-build", "d-none", "d-v141"}},
		// No key first (by endpoint), then by version.
		{registration.SortFirmware, []string{"d-build", "d-none", "d-14", "d-v141", "d-142rc", "d-142", "d-190", "d-1100", "d-2"}},
		{registration.SortModel, []string{"d-14", "d-142rc", "d-build", "d-none", "d-v141", "d-1100", "d-2", "d-142", "d-190"}},
		{registration.SortLastSeen, []string{"d-14", "d-142", "d-142rc", "d-190", "d-build", "d-none", "d-v141", "d-1100", "d-2"}},
	}
	for _, tc := range tests {
		for _, desc := range []bool{false, true} {
			want := slices.Clone(tc.want)
			if desc {
				slices.Reverse(want)
			}
			var got []string
			f := registration.Filter{Sort: tc.sort, Desc: desc, Limit: 2}
			for range 20 {
				page, err := s.ListRegistrations(ctx, f)
				if err != nil {
					t.Fatalf("sort %s desc=%v: %v", tc.sort, desc, err)
				}
				got = append(got, endpoints(page)...)
				if len(page) < f.Limit {
					break
				}
				last := page[len(page)-1]
				f.After, f.AfterSort = last.Endpoint, registration.SortValue(last, tc.sort)
			}
			if !slices.Equal(got, want) {
				t.Errorf("sort %s desc=%v:\n got %q\nwant %q", tc.sort, desc, got, want)
			}
		}
	}
}

func testRegistrationCount(t *testing.T, s registration.Store) {
	c, ok := s.(registration.Counter)
	if !ok {
		t.Skipf("%T does not count registrations", s)
	}
	versionFleet(t, s)
	for _, tc := range []struct {
		f    registration.Filter
		want int
	}{
		{registration.Filter{}, 9},
		{registration.Filter{EndpointPrefix: "d-14"}, 3},
		{registration.Filter{FirmwareOp: ">=", FirmwareVersion: "1.9", Limit: 1, After: "d-2", Sort: registration.SortModel}, 3},
		{registration.Filter{FirmwareVersion: "nope"}, 0},
	} {
		n, err := c.CountRegistrations(context.Background(), tc.f)
		if err != nil || n != tc.want {
			t.Errorf("CountRegistrations(%+v) = %d, %v; want %d", tc.f, n, err, tc.want)
		}
	}
}
