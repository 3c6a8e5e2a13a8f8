package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// A device whose Device Type is empty (/3/0/17 = "", profile empty-device-type) is read after
// its Register, and its Updates read nothing (issue 12, item 4). One info reader works the
// queue in order, so the read of a device registered after the Updates shows that they queued
// none.
func TestEmptyDeviceTypeReadOnlyAfterRegister(t *testing.T) {
	h := startHarness(t, func(c *server.Config) {
		c.ReadDeviceInfo = true
		c.Registration.InfoReadWorkers = 1
	})
	ctx := context.Background()
	start := func(cfg lwm2mtest.DeviceConfig) *lwm2mtest.Device {
		t.Helper()
		cfg.RequestTimeout = 30 * time.Second
		dev := lwm2mtest.NewDevice(cfg, nil)
		t.Cleanup(func() { _ = dev.Close() })
		if err := dev.Start(ctx, h.srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		return dev
	}
	reads := func(dev *lwm2mtest.Device) uint64 { return dev.Stats().Requests[lwm2mtest.OpRead] }

	cfg := lwm2mtest.DeviceConfig{Endpoint: "no-type", Manufacturer: "Acme"}
	if err := lwm2mtest.ApplyProfiles(&cfg, lwm2mtest.ProfileEmptyDeviceType); err != nil {
		t.Fatal(err)
	}
	dev := start(cfg)
	waitFor(t, "the read after Register", 30*time.Second, func() bool {
		r, _ := h.srv.Registry().Get("no-type")
		return r.Manufacturer == "Acme"
	})
	if n := reads(dev); n != 1 {
		t.Fatalf("%d reads after Register, want 1", n)
	}
	for range 3 {
		if err := dev.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	marker := start(lwm2mtest.DeviceConfig{Endpoint: "marker"})
	waitFor(t, "the marker's read", 30*time.Second, func() bool { return reads(marker) >= 1 })
	if n := reads(dev); n != 1 {
		t.Fatalf("%d reads after 3 Updates, want still 1", n)
	}
}
