package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestSleepingDeviceReadsThroughServe: with the real wiring, 40 Reads of a support token on a
// sleeping queue-mode device queue nothing (409 device_asleep), the admin's reads fill only
// --max-queued-reads of the queue (then 429), and a write still queues and is audited.
func TestSleepingDeviceReadsThroughServe(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--awake-window", "300ms", "--max-queued-reads", "2", "--read-device-info=false")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := simTemplate()
	cfg.Endpoint = "urn:dev:sleeper"
	cfg.Binding = "UQ"
	cfg.QueueWindow = 300 * time.Millisecond
	dev := lwm2mtest.NewDevice(cfg, nil)
	defer dev.Close()
	if err := dev.Start(ctx, ts.coap); err != nil {
		t.Fatal(err)
	}
	dev.Sleep()
	// The awake window running out is the behaviour under test, so the test lets it run out.
	time.Sleep(500 * time.Millisecond)
	support := createToken(t, ts, "helpdesk", "support")

	call := func(secret, method, path string, body io.Reader) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.base+path, body)
		req.Header.Set("Authorization", "Bearer "+secret)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	const read = "/api/v1/devices/urn:dev:sleeper/objects/3/0/0"
	for range 40 {
		if code, out := call(support, "GET", read, nil); code != http.StatusConflict {
			t.Fatalf("support read of a sleeping device: %d %v, want 409", code, out)
		}
	}
	for i := range 2 {
		if code, out := call(testAdminToken, "GET", read, nil); code != http.StatusAccepted {
			t.Fatalf("admin read %d: %d %v, want 202", i, code, out)
		}
	}
	if code, out := call(testAdminToken, "GET", read, nil); code != http.StatusTooManyRequests {
		t.Fatalf("third admin read: %d %v, want 429 (reads hold their share)", code, out)
	}
	if code, out := call(testAdminToken, "PUT", "/api/v1/devices/urn:dev:sleeper/objects/1/0/1", jsonBody(`{"value":600}`)); code != http.StatusAccepted {
		t.Fatalf("admin write: %d %v, want 202", code, out)
	}
	var audit struct {
		Entries []struct {
			Action string            `json:"action"`
			Detail map[string]string `json:"detail"`
		} `json:"entries"`
	}
	ts.apiCall(t, "GET", "/api/v1/audit?limit=100", nil, &audit)
	queued := 0
	for _, e := range audit.Entries {
		if e.Detail["queued_request"] != "" {
			queued++
		}
	}
	if queued != 3 {
		t.Fatalf("%d audit entries name a queued request, want 3 (2 reads, 1 write): %+v", queued, audit.Entries)
	}
}

func jsonBody(s string) io.Reader { return strings.NewReader(s) }
