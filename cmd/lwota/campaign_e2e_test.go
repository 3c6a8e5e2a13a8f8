package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// campaignJSON is the part of the API's campaign the tests read.
type campaignJSON struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Wave   int    `json:"wave"`
	// Progress is the campaign's counts, overall and per wave.
	Progress struct {
		Total  int               `json:"total"`
		Counts campaignCountJSON `json:"counts"`
		Waves  []struct {
			Wave   int               `json:"wave"`
			Size   int               `json:"size"`
			Counts campaignCountJSON `json:"counts"`
		} `json:"waves"`
	} `json:"progress"`
}

type campaignCountJSON struct {
	Pending    int `json:"pending"`
	InProgress int `json:"in_progress"`
	Succeeded  int `json:"succeeded"`
	UpToDate   int `json:"already_up_to_date"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
}

func (ts *testService) campaign(t *testing.T, id string) campaignJSON {
	t.Helper()
	var c campaignJSON
	if code := ts.apiCall(t, "GET", "/api/v1/campaigns/"+id, nil, &c); code != 200 {
		t.Fatalf("GET campaign %s: %d", id, code)
	}
	return c
}

// waitCampaign polls the campaign until cond holds. It fails once the campaign has made no
// progress (state, wave and counts all unchanged) for stall: a busy machine slows a campaign
// down, and only one that stopped moving is a failure. Every poll reads all the members, so
// it polls once a second, not faster: on a loaded machine the polls would slow what they wait for.
func (ts *testService) waitCampaign(t *testing.T, id string, stall time.Duration, cond func(c campaignJSON) bool) campaignJSON {
	t.Helper()
	var seen campaignJSON
	moved := time.Now()
	for {
		c := ts.campaign(t, id)
		if cond(c) {
			return c
		}
		if !sameProgress(c, seen) {
			seen, moved = c, time.Now()
		}
		if time.Since(moved) > stall {
			t.Fatalf("no progress for %s: the campaign is %s in wave %d (%s), counts %+v", stall, c.State, c.Wave, c.Reason, c.Progress.Counts)
		}
		time.Sleep(time.Second)
	}
}

// sameProgress reports whether nothing a campaign's progress shows changed from a to b.
func sameProgress(a, b campaignJSON) bool {
	return a.State == b.State && a.Wave == b.Wave && a.Progress.Counts == b.Progress.Counts
}

// waitModels waits until lwota has read every device's model (the campaign checks the image's
// target model against it), looking up each device until it has one, not all of them every time.
func waitModels(t *testing.T, ts *testService, devs []*lwm2mtest.Device) {
	t.Helper()
	next := 0
	waitFor(t, "every device's model read", 3*time.Minute, func() bool {
		for ; next < len(devs); next++ {
			r, err := ts.svc.core.Device(context.Background(), devs[next].Endpoint())
			if err != nil || r.Model == "" {
				return false
			}
		}
		return true
	})
}

// The acceptance: 500 devices, 100 of them failing their update; waves 2 %, 20 %,
// 100 %; a 10 % failure threshold that pauses. The campaign pauses in the wave where failures
// cross it, with the later waves not started and the reason given; resumed with a raised
// threshold it completes with exactly the failing devices failed. With restart, lwota is
// killed in the last wave and started again: the campaign completes and no device receives the
// image twice.
func TestCampaignFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("campaign fleet: -short")
	}
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "straight", true: "restart"}[restart], func(t *testing.T) {
			dataDir := t.TempDir()
			// Timings for a busy machine (CI runs this beside other work): the driver follows the
			// devices' notifications and registrations, and its 2 s poll is only the fallback (at
			// 300 ms, 400 jobs in flight polled 1,300 times a second: lwota's datagram queue
			// overflowed and dropped every copy of some block requests until their devices gave
			// up); a 1 s CoAP ACK timeout does not retransmit every answer a loaded process is
			// late with.
			args := []string{"--allow-unsigned", "--update-poll", "2s", "--coap-ack-timeout", "1s", "--campaign-tick", "200ms"}
			// A restart below comes back on this CoAP port: one outside the ephemeral range stays free.
			ts := startService(t, dataDir, "", append(args, "--coap-addr", freeUDPBelowEphemeral(t))...)
			img := uploadImage(t, ts, "6.0.0", fwImage("6.0.0", 16<<10))
			cfg := fleetConfig(lwm2mtest.DeliveryPull)
			// A device whose socket met lwota's closed port during the restart registers again
			// from a new one at its next Update, so the lifetime bounds how long it stays out of
			// reach. At 30 s, 500 devices updating every 20 s missed their 10 s deadlines on a
			// loaded machine, were expired mid-download and registered again, over and over.
			cfg.Lifetime = time.Minute
			good := startFleet(t, ts, "cmp-ok", 400, cfg)
			cfg.Faults.UpdateFailure = true
			bad := startFleet(t, ts, "cmp-bad", 100, cfg)
			all := append(good.Devices(), bad.Devices()...)
			waitModels(t, ts, all)

			var c campaignJSON
			code := ts.apiCall(t, "POST", "/api/v1/campaigns", map[string]any{
				"name": "acceptance", "image_id": img,
				"selector":          map[string]any{"query": `endpoint ^= "cmp-"`},
				"waves":             []map[string]any{{"percent": 2}, {"percent": 20}, {"percent": 100}},
				"failure_threshold": map[string]any{"percent": 10, "min_devices": 5, "action": "pause"},
				// A second attempt, soon, for what a new attempt may cure (a download whose block
				// requests a loaded lwota dropped until the device gave up, one refused while
				// lwota shut down for the restart); the failing devices' result 8 is terminal, so
				// they fail at their first attempt whatever this says.
				"policy": map[string]any{"max_attempts": 2, "backoff": "1s"},
				"start":  true,
			}, &c)
			if code != 201 || c.Progress.Total != 500 {
				t.Fatalf("create: %d, %+v", code, c)
			}
			c = ts.waitCampaign(t, c.ID, 2*time.Minute, func(c campaignJSON) bool { return c.State != "running" })
			if c.State != "paused" || !strings.Contains(c.Reason, "threshold") {
				t.Fatalf("campaign %s (%s), want paused by the threshold", c.State, c.Reason)
			}
			for _, w := range c.Progress.Waves {
				if w.Wave > c.Wave && w.Counts.Pending != w.Size {
					t.Fatalf("paused in wave %d, but wave %d has started: %+v", c.Wave, w.Wave, w.Counts)
				}
			}
			t.Logf("paused in wave %d: %s", c.Wave, c.Reason)
			var resumed campaignJSON
			if code := ts.apiCall(t, "POST", "/api/v1/campaigns/"+c.ID+"/resume", map[string]any{
				// Failing devices finish first (they fail at Execute; the others reboot and
				// register again): a large minimum sample keeps that head start from tripping it.
				"failure_threshold": map[string]any{"percent": 50, "min_devices": 200, "action": "pause"},
			}, &resumed); code != 200 || resumed.State != "running" {
				t.Fatalf("resume: %d %+v", code, resumed)
			}
			if restart {
				ts.waitCampaign(t, c.ID, 2*time.Minute, func(c campaignJSON) bool { return c.Wave == 3 && c.Progress.Counts.Succeeded >= 150 })
				ts.shutdown(t)
				time.Sleep(time.Second)
				ts = startService(t, dataDir, "", append(args, "--coap-addr", ts.coap)...)
			}
			c = ts.waitCampaign(t, c.ID, 2*time.Minute, func(c campaignJSON) bool { return c.State != "running" })
			var failed struct {
				Devices []struct {
					Endpoint string `json:"endpoint"`
					Reason   string `json:"reason"`
				} `json:"devices"`
			}
			if code := ts.apiCall(t, "GET", "/api/v1/campaigns/"+c.ID+"/devices?state=failed&limit=1000", nil, &failed); code != 200 {
				t.Fatalf("devices: %d", code)
			}
			for _, d := range failed.Devices {
				if !strings.HasPrefix(d.Endpoint, "cmp-bad-") || d.Reason == "" {
					t.Fatalf("failed device %s (%q): want only the injected ones, with a reason", d.Endpoint, d.Reason)
				}
			}
			if c.State != "completed" || c.Progress.Counts.Failed != 100 || c.Progress.Counts.Succeeded != 400 {
				t.Fatalf("campaign %s (%s), counts %+v; want completed, 400 succeeded, 100 failed", c.State, c.Reason, c.Progress.Counts)
			}
			for _, d := range all {
				v, _ := d.Value(lwm2m.NewPath(3, 0, 3))
				st := d.Stats()
				okDev := strings.HasPrefix(d.Endpoint(), "cmp-ok-")
				if st.ImagesReceived != 1 || okDev != (v.Str == "6.0.0") {
					t.Fatalf("%s: images received %d, version %q", d.Endpoint(), st.ImagesReceived, v.Str)
				}
			}
			// The campaign's own decisions and every device's update steps are in the audit log.
			for _, action := range []string{"campaign.threshold", "campaign.complete", "update.succeeded", "update.failed"} {
				var audit struct {
					Entries []struct {
						Actor  string            `json:"actor"`
						Target string            `json:"target"`
						Detail map[string]string `json:"detail"`
					} `json:"entries"`
				}
				if code := ts.apiCall(t, "GET", "/api/v1/audit?limit=1000&action="+action, nil, &audit); code != 200 || len(audit.Entries) == 0 {
					t.Fatalf("audit of %s: %d, %d entries", action, code, len(audit.Entries))
				}
				// The campaign decides for itself; a device's success or failure is caused by its own report.
				e := audit.Entries[0]
				wantActor := "system"
				if strings.HasPrefix(action, "update.") {
					wantActor = "device:" + e.Detail["endpoint"]
				}
				if e.Actor != wantActor || (strings.HasPrefix(action, "update.") && e.Detail["campaign"] != c.ID) {
					t.Fatalf("audit entry %+v, want actor %s", e, wantActor)
				}
			}
			t.Logf("campaign %s completed: %+v", c.ID, c.Progress.Counts)
		})
	}
}

// counter sums a counter family of a service's metrics.
func counter(t *testing.T, ts *testService, name string) float64 {
	t.Helper()
	mfs, err := ts.svc.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// Two nodes share one PostgreSQL and one S3 bucket, each with its own devices. A campaign
// created through either node is driven by exactly one of them (the lease holder), while each
// node delivers the image to the devices registered with it.
func TestCampaignCluster(t *testing.T) {
	dsn := pgtest.Start(t)
	srv := s3test.Start(t)
	srv.Setenv(t)
	common := []string{"--allow-unsigned", "--cluster", "--cluster-key", testClusterKey, "--update-poll", "300ms", "--campaign-tick", "200ms",
		"--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region, "--s3-path-style"}
	a := startService(t, t.TempDir(), dsn, append(common, "--node-name", "node-a")...)
	b := startService(t, t.TempDir(), dsn, append(common, "--node-name", "node-b")...)
	img := uploadImage(t, a, "7.0.0", fwImage("7.0.0", 16<<10))
	fa := startFleet(t, a, "cl-a", 20, fleetConfig(lwm2mtest.DeliveryPull))
	fb := startFleet(t, b, "cl-b", 20, fleetConfig(lwm2mtest.DeliveryPull))
	waitModels(t, a, fa.Devices())
	waitModels(t, b, fb.Devices())

	var c campaignJSON
	if code := b.apiCall(t, "POST", "/api/v1/campaigns", map[string]any{
		"name": "cluster", "image_id": img, "selector": map[string]any{"query": `endpoint ^= "cl-"`},
		"waves": []map[string]any{{"percent": 50}, {"percent": 100}}, "start": true,
	}, &c); code != 201 {
		t.Fatalf("create through node b: %d", code)
	}
	c = a.waitCampaign(t, c.ID, 2*time.Minute, func(c campaignJSON) bool { return c.State != "running" })
	if c.State != "completed" || c.Progress.Counts.Succeeded != 40 {
		t.Fatalf("campaign %s (%s), counts %+v", c.State, c.Reason, c.Progress.Counts)
	}
	for _, d := range append(fa.Devices(), fb.Devices()...) {
		if v, _ := d.Value(lwm2m.NewPath(3, 0, 3)); v.Str != "7.0.0" || d.Stats().ImagesReceived != 1 {
			t.Fatalf("%s: version %q, images received %d", d.Endpoint(), v.Str, d.Stats().ImagesReceived)
		}
	}
	// Each node served its own devices: 20 devices x 16 blocks of 1 KiB at least.
	for name, ts := range map[string]*testService{"a": a, "b": b} {
		if n := counter(t, ts, "lwota_transfer_blocks_served_total"); n < 20*16 {
			t.Errorf("node %s served %.0f blocks, want its 20 devices' 320 at least", name, n)
		}
	}
	ticks := []float64{counter(t, a, "lwota_campaign_tick_seconds"), counter(t, b, "lwota_campaign_tick_seconds")}
	if (ticks[0] > 0) == (ticks[1] > 0) {
		t.Fatalf("campaign ticks per node %v: want exactly one node driving campaigns", ticks)
	}
}

// The CLI against a real server: create and start a campaign, watch it to the end, list its
// devices.
func TestCampaignCLIEndToEnd(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms", "--campaign-tick", "200ms")
	img := uploadImage(t, ts, "8.0.0", fwImage("8.0.0", 8<<10))
	fleet := startFleet(t, ts, "cli", 6, fleetConfig(lwm2mtest.DeliveryPull))
	waitModels(t, ts, fleet.Devices())
	out, errOut, err := cli(t, "campaign", "create", "--server", ts.base, "--name", "cli rollout", "--image", img,
		"--query", `endpoint ^= "cli-"`, "--waves", "50%,100%", "--start", "--json")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	var c campaignJSON
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID == "" || c.State != "running" {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	out, errOut, err = cli(t, "campaign", "watch", "--server", ts.base, c.ID, "--plain")
	if err != nil || !strings.Contains(out, "completed") {
		t.Fatalf("watch: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = cli(t, "campaign", "devices", "--server", ts.base, c.ID, "--state", "succeeded")
	if err != nil || strings.Count(out, "cli-") != 6 {
		t.Fatalf("devices: %v\n%s", err, out)
	}
}
