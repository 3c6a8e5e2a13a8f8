package main

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// A request for a sleeping queue-mode device is stored, answered 202 with a request id, survives a
// restart of lwota, and is delivered when the device next talks to the server.
func TestQueueModeDeliversOnWake(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	dataDir := t.TempDir()
	ts := startService(t, dataDir, "", "--awake-window", "300ms", "--coap-addr", freeUDPBelowEphemeral(t)) // kept across the restart below
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg := simTemplate()
	cfg.Endpoint = "urn:dev:sleepy"
	cfg.Binding = "UQ"
	cfg.QueueWindow = 300 * time.Millisecond
	dev := lwm2mtest.NewDevice(cfg, nil)
	defer dev.Close()
	if err := dev.Start(ctx, ts.coap); err != nil {
		t.Fatal(err)
	}
	var d deviceJSON
	ts.apiCall(t, "GET", "/api/v1/devices/urn:dev:sleepy", nil, &d)
	if !d.QueueMode {
		t.Fatalf("device not in queue mode: %+v", d)
	}
	dev.Sleep()
	// The awake window running out is the behaviour under test, so the test lets it run out.
	time.Sleep(400 * time.Millisecond)

	var queued struct {
		RequestID string `json:"request_id"`
		State     string `json:"state"`
	}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/"+url.PathEscape(cfg.Endpoint)+"/objects/1/0/1", map[string]any{"value": 4242}, &queued); code != 202 {
		t.Fatalf("write to a sleeping device: status %d, want 202", code)
	}
	if queued.RequestID == "" || queued.State != "queued" {
		t.Fatalf("queued answer = %+v", queued)
	}
	if v, _ := dev.Value(lwm2m.MustParsePath("/1/0/1")); v.Int == 4242 || v.Uint == 4242 {
		t.Fatal("the sleeping device was written to")
	}

	// lwota restarts while the request waits: the queue is durable.
	ts.shutdown(t)
	ts = startService(t, dataDir, "", "--awake-window", "300ms", "--coap-addr", ts.coap)
	var p struct {
		State  string `json:"state"`
		Result *struct {
			Code string `json:"code"`
		} `json:"result"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/requests/"+queued.RequestID, nil, &p); code != 200 || p.State != "queued" {
		t.Fatalf("after restart request = %d %+v", code, p)
	}

	// The device wakes and sends an Update: the queued write is delivered.
	if err := dev.Wake(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queued write delivered", 10*time.Second, func() bool {
		ts.apiCall(t, "GET", "/api/v1/requests/"+queued.RequestID, nil, &p)
		return p.State == "done"
	})
	if p.Result == nil || p.Result.Code != "2.04" {
		t.Fatalf("request result = %+v", p.Result)
	}
	v, ok := dev.Value(lwm2m.MustParsePath("/1/0/1"))
	if !ok || (v.Int != 4242 && v.Uint != 4242) {
		t.Fatalf("device lifetime after wake = %+v", v)
	}
}
