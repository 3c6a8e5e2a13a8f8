package main

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// inventoryDevice is the device JSON with the attributes campaigns select on.
type inventoryDevice struct {
	Endpoint        string            `json:"endpoint"`
	Manufacturer    string            `json:"manufacturer"`
	Model           string            `json:"model"`
	DeviceType      string            `json:"device_type"`
	FirmwareVersion string            `json:"firmware_version"`
	Labels          map[string]string `json:"labels"`
}

type inventoryPage struct {
	Devices    []inventoryDevice `json:"devices"`
	NextCursor string            `json:"next_cursor"`
}

type labelsAnswer struct {
	Labels map[string]string `json:"labels"`
}

type apiErrorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// listInventory returns the endpoints GET /devices?query lists (one page is enough here).
func listInventory(t *testing.T, ts *testService, query string) []inventoryDevice {
	t.Helper()
	var page inventoryPage
	if code := ts.apiCall(t, "GET", "/api/v1/devices?limit=1000&"+query, nil, &page); code != 200 {
		t.Fatalf("GET /devices?%s: status %d", query, code)
	}
	if page.NextCursor != "" {
		t.Fatalf("GET /devices?%s: more than one page", query)
	}
	return page.Devices
}

func inventoryEndpoints(devs []inventoryDevice) []string {
	out := make([]string, 0, len(devs))
	for _, d := range devs {
		out = append(out, d.Endpoint)
	}
	return out
}

// Devices of two models register; lwota reads their identity (Object 3) in the background;
// labels set through the API (one before the device ever registered) and the device attributes
// filter the device list and show in the device JSON. A reboot with new firmware is read again.
func TestInventoryEndToEnd(t *testing.T) {
	ts := startService(t, t.TempDir(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Factory provisioning: labels come before the first registration.
	provisioned := map[string]string{"cell": "c17", "region": "eu"}
	var got labelsAnswer
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/inv-b-1/labels", map[string]any{"labels": provisioned}, &got); code != 200 || !maps.Equal(got.Labels, provisioned) {
		t.Fatalf("PUT labels before registration: %d %v", code, got.Labels)
	}

	meters := simTemplate()
	meters.Manufacturer, meters.Model, meters.DeviceType, meters.FirmwareVersion = "Acme", "M-A", "meter", "1.0.0"
	trackers := simTemplate()
	trackers.Manufacturer, trackers.Model, trackers.DeviceType, trackers.FirmwareVersion = "Globex", "M-B", "tracker", "2.0.0"
	trackers.LwM2MVersion, trackers.ContentFormats = "1.0", nil // TLV: the read works in 1.0's formats too
	fleetA := lwm2mtest.NewFleet(3, meters, func(i int) string { return fmt.Sprintf("inv-a-%d", i) }, nil)
	defer fleetA.Close()
	fleetB := lwm2mtest.NewFleet(2, trackers, func(i int) string { return fmt.Sprintf("inv-b-%d", i) }, nil)
	defer fleetB.Close()
	for _, f := range []*lwm2mtest.Fleet{fleetA, fleetB} {
		if _, err := f.Start(ctx, ts.coap, 8); err != nil {
			t.Fatal(err)
		}
	}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{"labels": map[string]string{"region": "eu", "rack": "7"}}, nil); code != 200 {
		t.Fatalf("PUT labels: %d", code)
	}

	// The identity arrives shortly after each Register, read in the background.
	waitFor(t, "device info of every device", 30*time.Second, func() bool {
		return len(listInventory(t, ts, "model=M-A")) == 3 && len(listInventory(t, ts, "model=M-B")) == 2
	})
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"model=M-A", []string{"inv-a-0", "inv-a-1", "inv-a-2"}},
		{"model=M-B", []string{"inv-b-0", "inv-b-1"}},
		{"model=M-C", []string{}},
		{"manufacturer=Acme&device_type=meter", []string{"inv-a-0", "inv-a-1", "inv-a-2"}},
		{"device_type=tracker&firmware=2.0.0", []string{"inv-b-0", "inv-b-1"}},
		{"label=region:eu", []string{"inv-a-0", "inv-b-1"}},
		{"label=region:eu&label=cell:c17", []string{"inv-b-1"}},
		{"label=region:eu&model=M-A", []string{"inv-a-0"}},
		{"label=" + url.QueryEscape("rack:7") + "&prefix=inv-a-", []string{"inv-a-0"}},
		{"label=region:us", []string{}},
	} {
		if got := inventoryEndpoints(listInventory(t, ts, tc.query)); !slices.Equal(got, tc.want) {
			t.Errorf("GET /devices?%s = %q, want %q", tc.query, got, tc.want)
		}
	}

	var dev inventoryDevice
	if code := ts.apiCall(t, "GET", "/api/v1/devices/inv-b-1", nil, &dev); code != 200 {
		t.Fatalf("GET device: %d", code)
	}
	want := inventoryDevice{Endpoint: "inv-b-1", Manufacturer: "Globex", Model: "M-B", DeviceType: "tracker", FirmwareVersion: "2.0.0", Labels: provisioned}
	if dev.Endpoint != want.Endpoint || dev.Manufacturer != want.Manufacturer || dev.Model != want.Model ||
		dev.DeviceType != want.DeviceType || dev.FirmwareVersion != want.FirmwareVersion || !maps.Equal(dev.Labels, want.Labels) {
		t.Errorf("device JSON = %+v, want %+v", dev, want)
	}
	// (Each answer decodes into a fresh value: json.Unmarshal merges into a map it finds.)
	var plain inventoryDevice
	if code := ts.apiCall(t, "GET", "/api/v1/devices/inv-a-1", nil, &plain); code != 200 || plain.Labels != nil || plain.Model != "M-A" {
		t.Errorf("unlabelled device = %d %+v", code, plain)
	}
	var a0 labelsAnswer
	if code := ts.apiCall(t, "GET", "/api/v1/devices/inv-a-0/labels", nil, &a0); code != 200 || !maps.Equal(a0.Labels, map[string]string{"region": "eu", "rack": "7"}) {
		t.Errorf("GET labels = %d %v", code, a0.Labels)
	}

	// A reboot into new firmware: the Register is followed by a read of /3/0/3.
	dev0 := fleetA.Devices()[0]
	dev0.SetValue(lwm2m.MustParsePath("/3/0/3"), lwm2m.String("1.1.0"))
	if err := dev0.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new firmware version", 30*time.Second, func() bool {
		return slices.Equal(inventoryEndpoints(listInventory(t, ts, "firmware=1.1.0")), []string{"inv-a-0"})
	})
	var rebooted inventoryDevice
	if code := ts.apiCall(t, "GET", "/api/v1/devices/inv-a-0", nil, &rebooted); code != 200 || rebooted.Model != "M-A" || rebooted.Labels["rack"] != "7" {
		t.Errorf("after the reboot = %d %+v: model and labels stay", code, rebooted)
	}

	// Clear errors for what the API refuses, and nothing changes.
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{"labels": map[string]string{"Region": "eu"}}, 400, "invalid_request"},
		{"PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{"labels": map[string]string{"k": string(make([]byte, 257))}}, 400, "invalid_request"},
		{"PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{}, 400, "invalid_json"},
		{"PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{"labels": map[string]int{"k": 1}}, 400, "invalid_json"},
		{"GET", "/api/v1/devices?label=region", nil, 400, "invalid_query"},
		{"GET", "/api/v1/devices?label=Region:eu", nil, 400, "invalid_query"},
		{"GET", "/api/v1/devices?label=region:eu&label=region:us", nil, 400, "invalid_query"},
	} {
		var e apiErrorJSON
		if code := ts.apiCall(t, tc.method, tc.path, tc.body, &e); code != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("%s %s %v = %d %+v, want %d %s", tc.method, tc.path, tc.body, code, e.Error, tc.status, tc.code)
		}
	}
	var kept, cleared labelsAnswer
	if code := ts.apiCall(t, "GET", "/api/v1/devices/inv-a-0/labels", nil, &kept); code != 200 || len(kept.Labels) != 2 {
		t.Errorf("labels after refused PUTs = %d %v", code, kept.Labels)
	}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/inv-a-0/labels", map[string]any{"labels": map[string]string{}}, &cleared); code != 200 || cleared.Labels == nil || len(cleared.Labels) != 0 {
		t.Errorf("PUT empty labels = %d %v", code, cleared.Labels)
	}
	if got := inventoryEndpoints(listInventory(t, ts, "label=region:eu")); !slices.Equal(got, []string{"inv-b-1"}) {
		t.Errorf("after clearing inv-a-0's labels, label=region:eu lists %q", got)
	}
}
