package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// A device whose Object 5 never leaves Downloading and that takes pushes only: an explicit
// pull fails at once with the reason, before anything is sent; an auto job resets it a bounded
// number of times, with a backoff, and fails saying the device stays in Downloading — not a
// storm of resets until the step times out.
func TestUpdateStuckDownloadingDevice(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "6.0.0", fwImage("6.0.0", 16<<10))
	for _, c := range []struct {
		name, method string
		reason       string
		maxRequests  uint64 // requests lwota sent the device in all (reads, observes, resets)
		within       time.Duration
	}{
		{"explicit pull", fwupdate.MethodPull, "method pull, but the device accepts push only (/5/0/9 = 1)", 4, 10 * time.Second},
		{"auto", fwupdate.MethodAuto, "the device stays in downloading (State 1) after 3 resets", 30, 40 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := fleetConfig(lwm2mtest.DeliveryBoth)
			cfg.Object5Version = "1.1"
			if err := lwm2mtest.ApplyProfiles(&cfg, "stuck-downloading,push-only"); err != nil {
				t.Fatal(err)
			}
			fleet := startFleet(t, ts, "stuck-"+c.method, 1, cfg)
			dev := fleet.Devices()[0]
			before := total(dev.Stats().Requests)
			jobs := startUpdates(t, ts, fleet.Devices(), img, c.method, quickPolicy())
			j := waitJobs(t, ts, jobs, c.within)[dev.Endpoint()]
			if j.State != fwupdate.StateFailed || j.Reason != c.reason || j.Attempt != 1 {
				t.Fatalf("job ended %s (%q) after %d attempts; want failed (%q) after 1", j.State, j.Reason, j.Attempt, c.reason)
			}
			if n := total(dev.Stats().Requests) - before; n > c.maxRequests {
				t.Errorf("lwota sent the device %d requests, want at most %d", n, c.maxRequests)
			}
		})
	}
}

func total(m map[lwm2mtest.Op]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// flakyBlobs is the real blob store whose reads fail while down is set, as S3 does while it is
// stopped.
type flakyBlobs struct {
	firmware.Blobs
	down  atomic.Bool
	opens atomic.Int64 // reads refused
}

var errBlobsDown = errors.New("blob store unavailable (test)")

func (f *flakyBlobs) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if f.down.Load() {
		f.opens.Add(1)
		return nil, errBlobsDown
	}
	return f.Blobs.Open(ctx, key, offset, length)
}

func (f *flakyBlobs) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if p, ok := f.Blobs.(firmware.Presigner); ok {
		return p.PresignGet(ctx, key, ttl)
	}
	return "", firmware.ErrNoDownloadURL
}

// A push whose package cannot be read (the blob store is down) is a transient failure of
// lwota's, not the device's: the attempt fails, the policy retries, and once the store is back
// the update succeeds.
func TestUpdatePushRecoversFromBlobOutage(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	blobs := &flakyBlobs{}
	ts := startServiceWith(t, t.TempDir(), "", func(c *serveConfig) {
		c.wrapBlobs = func(b firmware.Blobs) firmware.Blobs { blobs.Blobs = b; return blobs }
	}, "--allow-unsigned", "--update-poll", "300ms")
	body := fwImage("7.0.0", 16<<10)
	img := uploadImage(t, ts, "7.0.0", body)
	fleet := startFleet(t, ts, "blob-outage", 1, fleetConfig(lwm2mtest.DeliveryPush))
	dev := fleet.Devices()[0]
	blobs.down.Store(true)
	p := quickPolicy()
	p.BackoffBase, p.BackoffMax = 2*time.Second, 2*time.Second // time to see the retry scheduled
	jobs := startUpdates(t, ts, fleet.Devices(), img, fwupdate.MethodPush, p)
	id := jobs[dev.Endpoint()]
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := ts.svc.updates.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Retryable() {
			if !strings.Contains(j.Reason, "read package") || !strings.Contains(j.Reason, errBlobsDown.Error()) {
				t.Errorf("retry reason %q does not say the package could not be read", j.Reason)
			}
			break
		}
		if !j.Active() {
			t.Fatalf("job ended %s (%q) on attempt %d while the blob store was down; want a retry", j.State, j.Reason, j.Attempt)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s (%q) after 30s with the blob store down", j.State, j.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if blobs.opens.Load() == 0 {
		t.Fatal("the blob store was never read: the test injected nothing")
	}
	blobs.down.Store(false)
	j := waitJobs(t, ts, jobs, 60*time.Second)[dev.Endpoint()]
	if j.State != fwupdate.StateSucceeded || j.Attempt < 2 {
		t.Fatalf("job ended %s (%q) after %d attempts; want succeeded after a retry", j.State, j.Reason, j.Attempt)
	}
	if j.BytesDelivered != int64(len(body)) {
		t.Errorf("bytes delivered %d, want %d", j.BytesDelivered, len(body))
	}
}

// The audit log has update.cancelled for a cancelled job, and names the device as the actor
// of the transitions its own reports caused (downloaded, verifying, succeeded).
func TestUpdateAuditActors(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "8.0.0", fwImage("8.0.0", 16<<10))
	ok := startFleet(t, ts, "audit-ok", 1, fleetConfig(lwm2mtest.DeliveryPull)).Devices()[0]
	slowCfg := fleetConfig(lwm2mtest.DeliveryPull)
	slowCfg.Faults.BlockDelay = 500 * time.Millisecond
	slow := startFleet(t, ts, "audit-cancel", 1, slowCfg).Devices()[0]

	jobs := startUpdates(t, ts, []*lwm2mtest.Device{ok, slow}, img, fwupdate.MethodPull, quickPolicy())
	waitFor(t, "the slow device downloading", 30*time.Second, func() bool {
		j, err := ts.svc.updates.Job(context.Background(), jobs[slow.Endpoint()])
		return err == nil && j.State == fwupdate.StateDelivering && j.Delivery != ""
	})
	if _, err := ts.svc.updates.Cancel(context.Background(), jobs[slow.Endpoint()], "wrong image"); err != nil {
		t.Fatal(err)
	}
	ended := waitJobs(t, ts, jobs, 60*time.Second)
	if j := ended[ok.Endpoint()]; j.State != fwupdate.StateSucceeded {
		t.Fatalf("job of %s ended %s (%q)", ok.Endpoint(), j.State, j.Reason)
	}

	entries, err := ts.svc.store.ListAudit(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	actors := map[string]string{} // "target action" -> actor
	for _, e := range entries {
		actors[e.Target+" "+e.Action] = e.Actor
	}
	for _, c := range []struct{ job, action, actor string }{
		{jobs[slow.Endpoint()], "update.cancelled", audit.ActorSystem},
		{jobs[ok.Endpoint()], "update.queued", audit.ActorSystem},
		{jobs[ok.Endpoint()], "update.downloaded", audit.ActorDevicePrefix + ok.Endpoint()},
		{jobs[ok.Endpoint()], "update.verifying", audit.ActorDevicePrefix + ok.Endpoint()},
		{jobs[ok.Endpoint()], "update.succeeded", audit.ActorDevicePrefix + ok.Endpoint()},
	} {
		got, found := actors["update:"+c.job+" "+c.action]
		if !found || got != c.actor {
			t.Errorf("audit of %s %s: actor %q (found %v), want %q", c.job, c.action, got, found, c.actor)
		}
	}
}

// An image deleted under a job that has not started delivering (the device was away) fails
// the job at once when the device comes back, with a reason that says so — not a push of a
// missing package or a retry loop.
func TestUpdateImageDeletedUnderJob(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "9.0.0", fwImage("9.0.0", 16<<10))
	for _, method := range []string{fwupdate.MethodPush, fwupdate.MethodPull} {
		t.Run(method, func(t *testing.T) {
			if method == fwupdate.MethodPull {
				img = uploadImage(t, ts, "9.0.1", fwImage("9.0.1", 16<<10))
			}
			fleet := startFleet(t, ts, "gone-"+method, 1, fleetConfig(lwm2mtest.DeliveryBoth))
			dev := fleet.Devices()[0]
			ctx := context.Background()
			if err := dev.Deregister(ctx); err != nil {
				t.Fatal(err)
			}
			jobs := startUpdates(t, ts, fleet.Devices(), img, method, quickPolicy())
			id := jobs[dev.Endpoint()]
			waitFor(t, "the job waiting for its device", 30*time.Second, func() bool {
				j, err := ts.svc.updates.Job(ctx, id)
				return err == nil && j.State == fwupdate.StateWaiting
			})
			// Behind lwota's back: the API and the store refuse to delete an image a job uses.
			deleteImageRow(t, ts, img)
			if err := dev.Reboot(ctx); err != nil {
				t.Fatal(err)
			}
			j := waitJobs(t, ts, jobs, 30*time.Second)[dev.Endpoint()]
			want := "image " + img + " was deleted"
			if j.State != fwupdate.StateFailed || j.Reason != want || j.Retryable() || j.Attempt != 1 {
				t.Fatalf("job ended %s (%q) after %d attempts; want failed (%q) after 1", j.State, j.Reason, j.Attempt, want)
			}
			if st := dev.Stats(); st.DownloadsStarted != 0 {
				t.Errorf("the device started %d downloads of a deleted image", st.DownloadsStarted)
			}
		})
	}
}

// deleteImageRow removes an image's row from the SQLite database directly, as an operator
// editing the database by hand would: lwota itself refuses to delete an image in use.
func deleteImageRow(t *testing.T, ts *testService, id string) {
	t.Helper()
	db, err := sql.Open("sqlite", ts.svc.cfg.Database+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("DELETE FROM images WHERE id = ?", id)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("deleted %d image rows, want 1", n)
	}
}
