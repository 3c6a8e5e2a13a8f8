package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// waitForFirmware waits until the API lists every device of fleet with firmware version want
// (lwota reads /3/0 of each device after it registers). On timeout it says where the missing
// devices' reads went: how many are missing, a few of them with their live registration and
// what the simulated device saw, and the registry's identity-read counters by outcome.
func waitForFirmware(t *testing.T, ts *testService, fleet *lwm2mtest.Fleet, want string, d time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	n := len(fleet.Devices())
	nextLog := start.Add(5 * time.Second)
	for {
		listed := listAll(t, ts, "&firmware="+want)
		if time.Now().After(nextLog) { // the pace, for a failure's log
			t.Logf("%s: %d of %d devices listed with firmware %s; identity reads: %s", time.Since(start).Round(time.Millisecond), len(listed), n, want, infoReadCounts(t, ts))
			nextLog = nextLog.Add(5 * time.Second)
		}
		if len(listed) == n {
			t.Logf("all %d devices listed with firmware %s after %s; identity reads: %s", n, want, time.Since(start).Round(time.Millisecond), infoReadCounts(t, ts))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for the firmware version of every sim device: %s", d, firmwareDiagnosis(t, ts, fleet, listed))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// infoReadCounts is lwota_device_info_reads_total by result, as /metrics shows it.
func infoReadCounts(t *testing.T, ts *testService) string {
	t.Helper()
	var parts []string
	for _, r := range []string{"ok", "failed", "deferred", "retried", "stale"} {
		parts = append(parts, fmt.Sprintf("%s=%g", r, metricValue(t, ts, "lwota_device_info_reads_total", "result", r)))
	}
	return strings.Join(parts, " ")
}

// firmwareDiagnosis describes the devices of fleet that listed (the API's answer) lacks.
func firmwareDiagnosis(t *testing.T, ts *testService, fleet *lwm2mtest.Fleet, listed []deviceJSON) string {
	t.Helper()
	have := make(map[string]bool, len(listed))
	for _, d := range listed {
		have[d.Endpoint] = true
	}
	inFleet := make(map[string]bool, len(fleet.Devices()))
	var missing []*lwm2mtest.Device
	for _, d := range fleet.Devices() {
		inFleet[d.Endpoint()] = true
		if !have[d.Endpoint()] {
			missing = append(missing, d)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d devices missing; identity reads: %s", len(missing), len(fleet.Devices()), infoReadCounts(t, ts))
	// A device outside the fleet listed with the fleet's firmware was answered by a fleet device:
	// one that took the address (a NoSec client's port, freed when it exited) after it.
	for _, d := range listed {
		if inFleet[d.Endpoint] {
			continue
		}
		fmt.Fprintf(&b, "\n  %s is not in the fleet yet has firmware %q", d.Endpoint, d.FirmwareVersion)
		if reg, ok := ts.svc.core.Registry().Get(d.Endpoint); ok {
			fmt.Fprintf(&b, "; registered from %s", reg.Addr.AddrPort)
			for _, fd := range fleet.Devices() {
				if a := fd.LocalAddr(); a != nil && a.String() == reg.Addr.AddrPort.String() {
					fmt.Fprintf(&b, ", the address of fleet device %s now", fd.Endpoint())
				}
			}
		}
	}
	now := time.Now()
	for _, d := range missing[:min(len(missing), 5)] {
		ep := d.Endpoint()
		fmt.Fprintf(&b, "\n  %s: device at %v, registrations %d, reads answered %d, errors %d", ep, d.LocalAddr(), d.Stats().Registrations, d.Stats().Requests[lwm2mtest.OpRead], d.Stats().Errors)
		reg, ok := ts.svc.core.Registry().Get(ep)
		if !ok {
			b.WriteString("; not in the registry")
			continue
		}
		fmt.Fprintf(&b, "; registry: id %s addr %s registered %s ago, last seen %s ago, unreachable since %v, firmware %q, queue mode %t",
			reg.ID, reg.Addr.AddrPort, now.Sub(reg.RegisteredAt).Round(time.Millisecond), now.Sub(reg.LastSeen).Round(time.Millisecond), reg.UnreachableSince, reg.FirmwareVersion, reg.QueueMode)
		var api deviceJSON
		code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep, nil, &api)
		fmt.Fprintf(&b, "; API %d firmware %q", code, api.FirmwareVersion)
		// The service log names the endpoint when something about it went wrong.
		lines := slices.DeleteFunc(strings.Split(ts.logBuf.String(), "\n"), func(l string) bool { return !strings.Contains(l, ep) })
		for _, l := range lines[max(len(lines)-3, 0):] {
			fmt.Fprintf(&b, "\n    log: %s", l)
		}
	}
	return b.String()
}
