package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// fwImage is a test firmware image: the simulator reports the version on its first line after
// installing it.
func fwImage(version string, size int) []byte {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	copy(b, "LWOTA-FW "+version+"\n")
	return b
}

// uploadImage stores an unsigned image (the service runs with --allow-unsigned) and returns its ID.
func uploadImage(t *testing.T, ts *testService, version string, body []byte) string {
	t.Helper()
	code, resp := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "fw", "X-Lwota-Version": version, "X-Lwota-Model": "sim-1"},
		bytes.NewReader(body), int64(len(body)))
	if code != 201 {
		t.Fatalf("upload: %d %s", code, resp)
	}
	var img struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(resp), &img); err != nil || img.ID == "" {
		t.Fatalf("upload answer %s: %v", resp, err)
	}
	return img.ID
}

// quickPolicy retries at once-ish, so fault tests finish in seconds.
func quickPolicy() *fwupdate.Policy {
	p := fwupdate.DefaultPolicy()
	p.BackoffBase, p.BackoffMax = 200*time.Millisecond, time.Second
	return &p
}

// waitJobs waits until every job ended and returns them by endpoint; on timeout it reports
// where the jobs stand.
func waitJobs(t *testing.T, ts *testService, jobs map[string]string, d time.Duration) map[string]*fwupdate.Job {
	t.Helper()
	out := make(map[string]*fwupdate.Job, len(jobs))
	deadline := time.Now().Add(d)
	for {
		sweep := time.Now()
		active := 0
		for ep, id := range jobs {
			if j, ok := out[ep]; ok && !j.Active() {
				continue
			}
			if time.Now().After(deadline) && out[ep] != nil {
				active++ // not read again: a sweep of a large fleet must not overrun the deadline
				continue
			}
			j, err := ts.svc.updates.Job(context.Background(), id)
			if err != nil {
				t.Fatalf("job %s: %v", id, err)
			}
			out[ep] = j
			if j.Active() {
				active++
			}
		}
		if active == 0 {
			return out
		}
		if time.Now().After(deadline) {
			byState := map[string]int{}
			var sample []string
			for ep, j := range out {
				if j.Active() {
					byState[string(j.State)]++
					if len(sample) < 5 {
						sample = append(sample, fmt.Sprintf("%s: %s %q device %d/%d delivery %s attempt %d", ep, j.State, j.Reason, j.DeviceState, j.DeviceResult, j.Delivery, j.Attempt))
					}
				}
			}
			t.Fatalf("after %s, %d of %d jobs still active: %v; e.g.\n%s\n%s", d, active, len(jobs), byState, strings.Join(sample, "\n"), ts.diagnostics())
		}
		// Each sweep reads every active job from storage: with hundreds of jobs under -race
		// (SQLite in pure Go, instrumented) back-to-back sweeps took most of a core from the
		// service under test (seen: TestUpdateFleet's devices starved in CI). At most a fifth of
		// the time goes to polling.
		time.Sleep(max(100*time.Millisecond, 4*time.Since(sweep)))
	}
}

func states(t *testing.T, ts *testService, id string) []fwupdate.State {
	t.Helper()
	h, err := ts.svc.updates.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []fwupdate.State
	for _, tr := range h {
		out = append(out, tr.To)
	}
	return out
}

// startFleet starts n simulated devices named prefix-i with cfg, and stops them at the end.
func startFleet(t *testing.T, ts *testService, prefix string, n int, cfg lwm2mtest.DeviceConfig) *lwm2mtest.Fleet {
	t.Helper()
	fleet := lwm2mtest.NewFleet(n, cfg, func(i int) string { return prefix + "-" + strconv.Itoa(i) }, nil)
	t.Cleanup(func() { _ = fleet.Close() })
	if _, err := fleet.Start(context.Background(), ts.coap, 32); err != nil {
		t.Fatal(err)
	}
	return fleet
}

// startUpdates starts one job per device and returns job IDs by endpoint.
func startUpdates(t *testing.T, ts *testService, devs []*lwm2mtest.Device, image, method string, p *fwupdate.Policy) map[string]string {
	t.Helper()
	jobs := make(map[string]string, len(devs))
	for _, d := range devs {
		j, err := ts.svc.updates.Start(context.Background(), d.Endpoint(), fwupdate.StartRequest{ImageID: image, Method: method, Policy: p})
		if err != nil {
			t.Fatalf("start %s: %v", d.Endpoint(), err)
		}
		jobs[d.Endpoint()] = j.ID
	}
	return jobs
}

// The whole way, once by pull and once by push: every step stored in order, the device on the
// new version, the image received exactly once.
func TestUpdateOneDevice(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	body := fwImage("2.0.0", 64<<10)
	img := uploadImage(t, ts, "2.0.0", body)
	for _, c := range []struct {
		method, delivery string
		sim              string
	}{
		{fwupdate.MethodPull, fwupdate.DeliveryCoAP, lwm2mtest.DeliveryPull},
		{fwupdate.MethodPush, fwupdate.DeliveryPush, lwm2mtest.DeliveryPush},
		{fwupdate.MethodAuto, fwupdate.DeliveryCoAP, lwm2mtest.DeliveryBoth},
	} {
		t.Run(c.method, func(t *testing.T) {
			cfg := simTemplate()
			cfg.Delivery = c.sim
			cfg.UpdateDelay = 100 * time.Millisecond
			fleet := startFleet(t, ts, "one-"+c.method, 1, cfg)
			dev := fleet.Devices()[0]
			jobs := startUpdates(t, ts, fleet.Devices(), img, c.method, quickPolicy())
			j := waitJobs(t, ts, jobs, 60*time.Second)[dev.Endpoint()]
			if j.State != fwupdate.StateSucceeded || j.Reason != "" {
				t.Fatalf("job ended %s (%s)", j.State, j.Reason)
			}
			want := []fwupdate.State{fwupdate.StateQueued, fwupdate.StateDelivering, fwupdate.StateDownloaded,
				fwupdate.StateUpdating, fwupdate.StateVerifying, fwupdate.StateSucceeded}
			if got := states(t, ts, j.ID); !slices.Equal(got, want) {
				t.Errorf("history %v, want %v", got, want)
			}
			if j.Delivery != c.delivery || j.BytesDelivered != int64(len(body)) || j.FromVersion != "1.0.0" {
				t.Errorf("delivery %q, %d bytes, from %q; want %q, %d, 1.0.0", j.Delivery, j.BytesDelivered, j.FromVersion, c.delivery, len(body))
			}
			if v, _ := dev.Value(lwm2m.NewPath(3, 0, 3)); v.Str != "2.0.0" {
				t.Errorf("device reports %q after the update", v.Str)
			}
			if st := dev.Stats(); st.ImagesReceived != 1 || st.UpdatesApplied != 1 {
				t.Errorf("device received %d images, applied %d updates; want 1 and 1", st.ImagesReceived, st.UpdatesApplied)
			}
		})
	}
}

// fleetConfig is a simulated device that retransmits fast, so that loss costs milliseconds.
func fleetConfig(delivery string) lwm2mtest.DeviceConfig {
	cfg := simTemplate()
	cfg.Delivery = delivery
	cfg.UpdateDelay = 50 * time.Millisecond
	cfg.BlockTimeout = 100 * time.Millisecond
	cfg.BlockRetries = 8
	cfg.RequestTimeout = 10 * time.Second
	cfg.RegisterRetry = time.Second
	return cfg
}

// checkFleetUpdated asserts every job succeeded, every device runs version and received the
// image exactly once.
func checkFleetUpdated(t *testing.T, ts *testService, fleets []*lwm2mtest.Fleet, jobs map[string]string, version string, d time.Duration) {
	t.Helper()
	done := waitJobs(t, ts, jobs, d)
	bad := 0
	outcomes := map[string]int{} // of the devices not updated, by job state and reason
	for _, f := range fleets {
		for _, dev := range f.Devices() {
			j := done[dev.Endpoint()]
			v, _ := dev.Value(lwm2m.NewPath(3, 0, 3))
			st := dev.Stats()
			if j.State != fwupdate.StateSucceeded || v.Str != version || st.ImagesReceived != 1 {
				outcomes[fmt.Sprintf("%s (%s)", j.State, j.Reason)]++
				if bad++; bad <= 5 {
					t.Errorf("%s: job %s (%s) after %d attempts, device on %q, images received %d",
						dev.Endpoint(), j.State, j.Reason, j.Attempt, v.Str, st.ImagesReceived)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d devices not updated exactly once; their jobs: %v", bad, len(jobs), outcomes)
	}
}

// 200 devices by pull and 200 by push with a 64 KiB image; then the same with 10% of the
// datagrams lost in each direction.
//
// The load is what a fleet needs, no more (as in TestUpdateSurvivesRestart). With a 256 KiB
// image (102,400 block exchanges), devices retransmitting blocks after 100 ms and lwota its
// pushed blocks after 150 ms, it failed in CI (idle: 317 of 400 jobs still delivering after
// 5 minutes; beside stress-ng: 172-198), every job slowly progressing at attempt 1: under
// -race with the rest of the suite, lwota's handlers took 0.5-5 s of wall time for half the
// requests, so every block was asked for several times (115,048 blocks served, against about
// 36,000 delivered) and pushed blocks were sent again (89,251 retransmissions), and the
// load grew with the delay. Now 25,600 exchanges, and retransmission timers of 500 ms: a lost
// datagram still costs well under a second.
func TestUpdateFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet update: -short")
	}
	for _, c := range []struct {
		name string
		loss float64
	}{{"clean", 0}, {"loss10", 0.10}} {
		t.Run(c.name, func(t *testing.T) {
			ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "500ms",
				"--coap-ack-timeout", "500ms")
			body := fwImage("3.1.0", 64<<10)
			img := uploadImage(t, ts, "3.1.0", body)
			pullCfg, pushCfg := fleetConfig(lwm2mtest.DeliveryPull), fleetConfig(lwm2mtest.DeliveryPush)
			pullCfg.BlockTimeout, pushCfg.BlockTimeout = 500*time.Millisecond, 500*time.Millisecond
			pulls := startFleet(t, ts, "pull-"+c.name, 200, pullCfg)
			pushes := startFleet(t, ts, "push-"+c.name, 200, pushCfg)
			// The loss starts once the fleet is registered: it is the update that must cope.
			for _, d := range append(pulls.Devices(), pushes.Devices()...) {
				d.SetFaults(lwm2mtest.Faults{Loss: c.loss})
			}
			jobs := startUpdates(t, ts, pulls.Devices(), img, fwupdate.MethodPull, quickPolicy())
			for ep, id := range startUpdates(t, ts, pushes.Devices(), img, fwupdate.MethodPush, quickPolicy()) {
				jobs[ep] = id
			}
			checkFleetUpdated(t, ts, []*lwm2mtest.Fleet{pulls, pushes}, jobs, "3.1.0", 5*time.Minute)
		})
	}
}

// Faults on the device: a reboot mid-download resumes and succeeds; an integrity failure is
// retried by the policy, then fails with the device's reason; an update failure fails at once.
func TestUpdateFaults(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	body := fwImage("4.0.0", 128<<10)
	img := uploadImage(t, ts, "4.0.0", body)
	for _, c := range []struct {
		name       string
		faults     lwm2mtest.Faults
		state      fwupdate.State
		reason     string // substring of the job's reason
		attempts   int
		downloaded uint64 // bytes the device fetched in all, at most
	}{
		{"reboot mid-download", lwm2mtest.Faults{RebootAfterBlocks: 40}, fwupdate.StateSucceeded, "", 2, uint64(len(body))},
		{"link lost mid-download", lwm2mtest.Faults{FailAfterBlocks: 64}, fwupdate.StateSucceeded, "", 2, uint64(len(body))},
		{"integrity failure", lwm2mtest.Faults{IntegrityFailure: true}, fwupdate.StateFailed, "integrity check failure for new downloaded package (gave up after 3 attempts)", 3, 3 * uint64(len(body))},
		{"update failure", lwm2mtest.Faults{UpdateFailure: true}, fwupdate.StateFailed, "firmware update failed", 1, uint64(len(body))},
		{"execute refused twice", lwm2mtest.Faults{RefuseExecute: 2}, fwupdate.StateSucceeded, "", 1, uint64(len(body))},
		{"execute always refused", lwm2mtest.Faults{RefuseExecute: 100}, fwupdate.StateFailed, "execute update", 1, uint64(len(body))},
		// Answered 2.04 and still Downloaded (the answer came from another device at a stale
		// address, or the device dropped it): executed again, not waited on for an hour.
		{"execute answered and ignored", lwm2mtest.Faults{IgnoreExecute: 1}, fwupdate.StateSucceeded, "", 1, uint64(len(body))},
		{"out of ram", lwm2mtest.Faults{OutOfRAM: true}, fwupdate.StateFailed, "out of RAM", 3, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := fleetConfig(lwm2mtest.DeliveryPull)
			cfg.Faults = c.faults
			fleet := startFleet(t, ts, "fault-"+strings.ReplaceAll(c.name, " ", "-"), 1, cfg)
			dev := fleet.Devices()[0]
			jobs := startUpdates(t, ts, fleet.Devices(), img, fwupdate.MethodPull, quickPolicy())
			j := waitJobs(t, ts, jobs, 60*time.Second)[dev.Endpoint()]
			if j.State != c.state || !strings.Contains(j.Reason, c.reason) || j.Attempt != c.attempts {
				t.Fatalf("job ended %s (%q) after %d attempts; want %s (%q) after %d", j.State, j.Reason, j.Attempt, c.state, c.reason, c.attempts)
			}
			// A failed pull counts what the transfer server served its last attempt: the whole
			// image when the device fetched it all and found it corrupt.
			if c.faults.IntegrityFailure && j.BytesDelivered != int64(len(body)) {
				t.Errorf("bytes delivered %d after complete downloads, want %d", j.BytesDelivered, len(body))
			}
			// A resumed download fetches the rest, not the whole image again.
			if st := dev.Stats(); st.BytesDownloaded > c.downloaded {
				t.Errorf("device downloaded %d bytes, want at most %d", st.BytesDownloaded, c.downloaded)
			}
			v, _ := dev.Value(lwm2m.NewPath(3, 0, 3))
			if (c.state == fwupdate.StateSucceeded) != (v.Str == "4.0.0") {
				t.Errorf("device reports version %q after a %s job", v.Str, c.state)
			}
		})
	}
}

// Killing lwota in the middle of 200 updates and starting it again: every job ends succeeded
// and no device receives the image twice.
func TestUpdateSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restart: -short")
	}
	dataDir := t.TempDir()
	// The load is what a restart needs, no more. At load 15-28 under -race (December 2026) the
	// process got a fraction of a core, and 200 devices fetching a 256 KiB image (51,200 block
	// exchanges), with the fleet's fast timers (blocks retransmitted after 100 ms, Registers
	// given up after 10 s and sent again from a new socket: 3,000-5,700 Registers for 200
	// devices, each re-observed) and lwota retransmitting after 200 ms, served about 40 blocks/s:
	// pull attempts timed out ("no download within the time the link allows", the device still
	// downloading; the transfer server then answers 4.03, the job no longer delivering). Three
	// such attempts fail a job with no image on the device: the CI failure "64 of 200 devices
	// not updated exactly once", pulls with "images received 0". No job was lost or repeated.
	// So: a 64 KiB image (4x fewer blocks), the timers of a real link (CoAP's 93 s request
	// timeout, a 1 s first block retransmission, lwota's 1 s ACK timeout); a pull still takes
	// four seconds idle, so the kill lands mid-transfer.
	args := []string{"--allow-unsigned", "--update-poll", "300ms", "--coap-ack-timeout", "1s"}
	ts := startService(t, dataDir, "", append(args, "--coap-addr", freeUDPBelowEphemeral(t))...) // kept across the restart below
	body := fwImage("5.0.0", 64<<10)
	img := uploadImage(t, ts, "5.0.0", body)
	cfg := fleetConfig(lwm2mtest.DeliveryBoth)
	cfg.Faults.BytesPerSecond = 16 << 10 // four seconds a download: the kill lands mid-transfer
	cfg.Lifetime = 30 * time.Second      // Updates every ~15 s find a socket the outage broke
	cfg.BlockTimeout, cfg.RequestTimeout = time.Second, 0
	// A delivery that stalls across the kill times out and is retried.
	policy := quickPolicy()
	// The slack covers a loaded CI machine under -race: 100 pushes and 100 pulls resume at once.
	// At 8 KiB/s (62 s an attempt) 8 pushes failed all three attempts in a clean-clone run at
	// load 15 (December 2026) while each took 4 s idle; the test is about the restart, not the
	// link's speed, so an attempt may take 158 s (64 KiB at 512 bytes/s, plus 30 s).
	policy.MinLinkRate, policy.StepSlack = 512, 30*time.Second
	pulls := startFleet(t, ts, "restart-pull", 100, cfg)
	cfg.Delivery = lwm2mtest.DeliveryPush
	pushes := startFleet(t, ts, "restart-push", 100, cfg)
	jobs := startUpdates(t, ts, pulls.Devices(), img, fwupdate.MethodPull, policy)
	for ep, id := range startUpdates(t, ts, pushes.Devices(), img, fwupdate.MethodPush, policy) {
		jobs[ep] = id
	}
	all := append(pulls.Devices(), pushes.Devices()...)
	waitFor(t, "a quarter of the devices downloaded", 4*time.Minute, func() bool {
		n := 0
		for _, d := range all {
			n += int(d.Stats().ImagesReceived)
		}
		return n >= len(all)/4
	})
	ts.shutdown(t)
	// Devices keep going meanwhile: downloads stall, reboots find nobody to register with.
	time.Sleep(time.Second)
	ts2 := startService(t, dataDir, "", append(args, "--coap-addr", ts.coap)...)
	checkFleetUpdated(t, ts2, []*lwm2mtest.Fleet{pulls, pushes}, jobs, "5.0.0", 8*time.Minute)
}

// Through the REST API: a release engineer starts an update, support staff read its state and
// history, and libcoap's client fetches the device's /fw/{token} URI — the image's exact bytes —
// until the job is cancelled (4.03); a forged token is 4.04.
func TestUpdateThroughAPIAndLibcoap(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	client := sysdeps.Require(t, "coap-client-notls")
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	body := fwImage("6.0.0", 48<<10)
	img := uploadImage(t, ts, "6.0.0", body)
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.BytesPerSecond = 2 << 10 // slow: the job stays delivering while libcoap fetches
	cfg.Object5Version = "1.1"          // a cancel executes /5/0/10
	dev := startFleet(t, ts, "api", 1, cfg).Devices()[0]
	ep := dev.Endpoint()
	waitModels(t, ts, []*lwm2mtest.Device{dev}) // the API refuses an image for a device whose model it does not know yet

	var job map[string]any
	if code := ts.apiCall(t, "POST", "/api/v1/devices/"+ep+"/updates", map[string]any{"image_id": img, "method": "pull"}, &job); code != 202 {
		t.Fatalf("start update: %d %v", code, job)
	}
	id, _ := job["id"].(string)
	if code := ts.apiCall(t, "POST", "/api/v1/devices/"+ep+"/updates", map[string]any{"image_id": img}, nil); code != 409 {
		t.Fatalf("second update of a busy device: %d, want 409", code)
	}
	var uri string
	waitFor(t, "the Package URI on the device", 10*time.Second, func() bool {
		v, _ := dev.Value(lwm2m.NewPath(5, 0, 1))
		uri = v.Str
		return uri != ""
	})
	out := filepath.Join(t.TempDir(), "image.bin")
	if b, err := exec.Command(client, "-m", "get", "-b", "1024", "-o", out, uri).CombinedOutput(); err != nil {
		t.Fatalf("coap-client-notls %s: %v %s", uri, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(body) {
		t.Fatalf("libcoap fetched %d bytes (%v), want the image's %d bytes", len(got), err, len(body))
	}

	var status map[string]any
	if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates/"+id, nil, &status); code != 200 || status["state"] != "delivering" {
		t.Fatalf("update status: %d %v", code, status)
	}
	if code := ts.apiCall(t, "POST", "/api/v1/devices/"+ep+"/updates/"+id+"/cancel", map[string]any{"reason": "test"}, &status); code != 200 || status["state"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, status)
	}
	for _, c := range []struct{ uri, want string }{
		{uri, "4.03"}, // the job ended: its token no longer opens anything
		{uri[:strings.LastIndex(uri, "/")+1] + "AWtJ4BBqb2IxlRG7vFYaT1hFG8SHBdBTRg", "4.04"}, // not lwota's
	} {
		b, _ := exec.Command(client, "-m", "get", "-B", "5", c.uri).CombinedOutput()
		if !strings.Contains(string(b), c.want) {
			t.Errorf("fetch %s: %q, want %s", c.uri, b, c.want)
		}
	}
	waitFor(t, "the device to drop the download", 10*time.Second, func() bool {
		s, r := dev.FirmwareState()
		return s == lwm2mtest.FWIdle && r == lwm2mtest.FWResultCancelled
	})
	var list struct {
		Updates []map[string]any `json:"updates"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates", nil, &list); code != 200 || len(list.Updates) != 1 || list.Updates[0]["id"] != id {
		t.Fatalf("update list: %d %v", code, list)
	}
}

// Pushes beyond MaxPushes wait for a slot; the wait does not count against the delivery's
// time, which is the link's: three pushes of ~2 s each through one slot, with a 4 s delivery
// limit, all succeed.
func TestUpdatePushesWaitForSlot(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startServiceWith(t, t.TempDir(), "", func(c *serveConfig) { c.UpdateConfig.MaxPushes = 1 },
		"--allow-unsigned", "--update-poll", "300ms")
	body := fwImage("4.5.0", 32<<10)
	img := uploadImage(t, ts, "4.5.0", body)
	cfg := fleetConfig(lwm2mtest.DeliveryPush)
	cfg.Faults.BlockDelay = 60 * time.Millisecond // 32 blocks: about 2 s per push
	fleet := startFleet(t, ts, "slot", 3, cfg)
	policy := quickPolicy()
	policy.MaxAttempts, policy.MinLinkRate, policy.StepSlack = 1, 16<<10, 2*time.Second // delivering: 2 s + 2 s
	jobs := startUpdates(t, ts, fleet.Devices(), img, fwupdate.MethodPush, policy)
	checkFleetUpdated(t, ts, []*lwm2mtest.Fleet{fleet}, jobs, "4.5.0", time.Minute)
}
