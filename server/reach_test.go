package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// A device that stops answering (issue 12, item 17): the API's request is bounded by
// DeviceRequestTimeout, not by the CoAP exchange lifetime (a read took 68 s before 504), and the
// device is marked unreachable at once, until it is heard from again.
func TestSilentDeviceBoundedAndMarked(t *testing.T) {
	h := startHarness(t, func(c *server.Config) { c.DeviceRequestTimeout = 2 * time.Second })
	ctx := context.Background()
	dev := lwm2mtest.NewDevice(lwm2mtest.DeviceConfig{Endpoint: "quiet", RequestTimeout: 30 * time.Second}, nil)
	t.Cleanup(func() { _ = dev.Close() })
	if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
		t.Fatal(err)
	}
	read := dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)}
	if _, _, err := h.srv.Do(ctx, "quiet", read); err != nil {
		t.Fatalf("read of an answering device: %v", err)
	}
	if r, _ := h.srv.Registry().Get("quiet"); !r.UnreachableSince.IsZero() {
		t.Fatalf("answering device marked unreachable: %v", r.UnreachableSince)
	}

	dev.SetFaults(lwm2mtest.Faults{Loss: 1}) // it hears nothing from now on
	start := time.Now()
	_, _, err := h.srv.Do(ctx, "quiet", read)
	took := time.Since(start)
	if !errors.Is(err, dm.ErrTimeout) {
		t.Fatalf("read of a silent device: %v, want dm.ErrTimeout", err)
	}
	// 2 s bound; the CoAP exchange alone would take over a minute (MAX_TRANSMIT_WAIT).
	if took > 30*time.Second {
		t.Fatalf("read of a silent device took %s; DeviceRequestTimeout is 2 s", took)
	}
	r, _ := h.srv.Registry().Get("quiet")
	if r.UnreachableSince.IsZero() || !r.Online(time.Now()) {
		t.Fatalf("silent device: unreachable since %v, online %v; want marked and still registered", r.UnreachableSince, r.Online(time.Now()))
	}
	if g := gauge(t, h, "lwota_registrations_unreachable"); g != 1 {
		t.Errorf("lwota_registrations_unreachable = %v, want 1", g)
	}
	listed, err := h.srv.Device(ctx, "quiet")
	if err != nil || listed.UnreachableSince.IsZero() {
		t.Fatalf("Device(quiet) = %+v, %v: the mark is not visible", listed, err)
	}

	// Its next uplink clears the mark.
	dev.SetFaults(lwm2mtest.Faults{})
	if err := dev.Update(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.srv.Registry().Get("quiet"); !r.UnreachableSince.IsZero() {
		t.Fatalf("after the device's Update: unreachable since %v", r.UnreachableSince)
	}
	if g := gauge(t, h, "lwota_registrations_unreachable"); g != 0 {
		t.Errorf("lwota_registrations_unreachable = %v after the Update, want 0", g)
	}
}

func gauge(t *testing.T, h *harness, name string) float64 {
	t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
