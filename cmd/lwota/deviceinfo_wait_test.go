package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// waitForFirmware waits until the API lists every device of fleet (endpoints starting with
// prefix, which nothing else uses) with firmware version want: lwota reads /3/0 of each device
// after it registers. It waits on progress, not on a clock: it fails when no further device
// got its version for stall (or when ctx ends), since a busy machine reads slower but still
// reads. On failure it says where the missing devices' reads went: how many are missing, a
// few of them with their live registration and what the simulated device saw, devices
// outside the fleet listed with its version, and the registry's identity-read counters.
func waitForFirmware(t *testing.T, ctx context.Context, ts *testService, fleet *lwm2mtest.Fleet, prefix, want string, stall time.Duration) {
	t.Helper()
	start := time.Now()
	n := len(fleet.Devices())
	best, lastProgress, nextLog := -1, start, start.Add(5*time.Second)
	for {
		listed := listAll(t, ts, "&prefix="+prefix+"&firmware="+want)
		now := time.Now()
		if len(listed) == n {
			t.Logf("all %d devices listed with firmware %s after %s; identity reads: %s", n, want, now.Sub(start).Round(time.Millisecond), infoReadCounts(t, ts))
			return
		}
		if len(listed) > best {
			best, lastProgress = len(listed), now
		}
		if now.After(nextLog) { // the pace, for a failure's log
			t.Logf("%s: %d of %d devices listed with firmware %s; identity reads: %s", now.Sub(start).Round(time.Millisecond), len(listed), n, want, infoReadCounts(t, ts))
			nextLog = nextLog.Add(5 * time.Second)
		}
		if now.Sub(lastProgress) > stall || ctx.Err() != nil {
			t.Fatalf("no sim device got its firmware version for %s (%s since the wait began): %s", now.Sub(lastProgress).Round(time.Millisecond),
				now.Sub(start).Round(time.Millisecond), firmwareDiagnosis(t, ts, fleet, listed, want))
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
func firmwareDiagnosis(t *testing.T, ts *testService, fleet *lwm2mtest.Fleet, listed []deviceJSON, want string) string {
	t.Helper()
	have := make(map[string]bool, len(listed))
	for _, d := range listed {
		have[d.Endpoint] = true
	}
	var missing []*lwm2mtest.Device
	for _, d := range fleet.Devices() {
		if !have[d.Endpoint()] {
			missing = append(missing, d)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d devices missing; identity reads: %s", len(missing), len(fleet.Devices()), infoReadCounts(t, ts))
	b.WriteString(strangers(t, ts, fleet, want))
	now := time.Now()
	for _, d := range missing[:min(len(missing), 5)] {
		ep := d.Endpoint()
		st := d.Stats()
		fmt.Fprintf(&b, "\n  %s: device at %v, registrations %d, reads answered %d, errors %d", ep, d.LocalAddr(), st.Registrations, st.Requests[lwm2mtest.OpRead], st.Errors)
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

// strangers lists the devices outside fleet that the API lists with the fleet's firmware
// version want, each on its own line: a fleet device answered for them. It holds their
// address now (a NoSec client's port, freed when it exited, went to a fleet device's socket).
func strangers(t *testing.T, ts *testService, fleet *lwm2mtest.Fleet, want string) string {
	t.Helper()
	inFleet := make(map[string]bool, len(fleet.Devices()))
	for _, d := range fleet.Devices() {
		inFleet[d.Endpoint()] = true
	}
	var b strings.Builder
	for _, d := range listAll(t, ts, "&firmware="+want) {
		if inFleet[d.Endpoint] {
			continue
		}
		fmt.Fprintf(&b, "\n  %s is not in the fleet yet has firmware %q", d.Endpoint, d.FirmwareVersion)
		reg, ok := ts.svc.core.Registry().Get(d.Endpoint)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "; registration's address %q", reg.Addr.AddrPort)
		for _, fd := range fleet.Devices() {
			if a := fd.LocalAddr(); a != nil && reg.Addr.AddrPort.IsValid() && a.String() == reg.Addr.AddrPort.String() {
				fmt.Fprintf(&b, ", the address of fleet device %s now", fd.Endpoint())
			}
		}
	}
	return b.String()
}
