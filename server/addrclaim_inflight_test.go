package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestStaleAddressTakenDuringARead: lwota's read of device A's identity is out (its request or
// answer lost, so lwota sends it again), A powers off, and the kernel gives A's port to device
// B's new socket; B registers from it, then gets the read's retransmission and answers it. The
// answer is B's, not A's: the read must fail as A being away, and A must not take B's identity.
// The CI's TestServiceEndToEnd saw this: the libcoap client's port went to a sim device while
// lwota was still sending the client /3/0, and libcoap-dev got the sim's firmware version.
func TestStaleAddressTakenDuringARead(t *testing.T) {
	h := startHarness(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(cfg lwm2mtest.DeviceConfig) *lwm2mtest.Device {
		d := lwm2mtest.NewDevice(cfg, nil)
		t.Cleanup(func() { _ = d.Close() })
		if err := d.Start(ctx, h.srv.Addr().String()); err != nil {
			t.Fatalf("start %s: %v", cfg.Endpoint, err)
		}
		return d
	}
	a := start(lwm2mtest.DeviceConfig{Endpoint: "dev-a", Manufacturer: "maker-a", RequestTimeout: 30 * time.Second})
	regA, _ := h.srv.Registry().Get("dev-a")

	// Every request to A is lost from now on: the read stays out, and is sent again.
	a.SetFaults(lwm2mtest.Faults{Loss: 1})
	read := make(chan error, 1)
	go func() { read <- h.srv.ReadDeviceInfo(ctx, "dev-a", lwm2m.NewPath(3, 0)) }()
	for a.Stats().Lost == 0 {
		select {
		case err := <-read:
			t.Fatalf("the read of dev-a ended before it reached dev-a: %v", err)
		case <-ctx.Done():
			t.Fatal("the read never reached dev-a")
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = a.Close() // powered off: no De-register, the registration stays live

	start(lwm2mtest.DeviceConfig{Endpoint: "dev-b", Manufacturer: "maker-b", LocalPort: int(regA.Addr.AddrPort.Port()), RequestTimeout: 30 * time.Second})
	if regB, _ := h.srv.Registry().Get("dev-b"); regB.Addr != regA.Addr {
		t.Fatalf("dev-b registered from %s, not dev-a's old address %s", regB.Addr, regA.Addr)
	}

	var err error
	select {
	case err = <-read:
	case <-ctx.Done():
		t.Fatal("the read of dev-a never ended")
	}
	if reg, _ := h.srv.Registry().Get("dev-a"); reg.Manufacturer == "maker-b" {
		t.Errorf("dev-a took the manufacturer of dev-b, the device now at its old address (read: %v)", err)
	}
	switch {
	case err == nil:
		t.Fatal("dev-a's read was answered by the device now at its old address")
	case !errors.Is(err, dm.ErrAsleep):
		t.Fatalf("dev-a's read: %v, want dm.ErrAsleep (away until it registers again)", err)
	}
}
