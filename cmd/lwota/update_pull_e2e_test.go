package main

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/s3test"
)

// Pulls end to end: over HTTP with a redirect to the image store, by sleepy queue-mode
// devices, over DTLS, with expired tokens, and the progress of a slow pull.

// listenHTTPFirst opens the service's HTTP listener before the service starts, so that the
// public URL (http:// Package URIs, signed /blobs/ links) names its real port.
func listenHTTPFirst(t *testing.T) func(*serveConfig) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // the service closes it too; a second Close is harmless
	return func(c *serveConfig) {
		c.httpListener, c.HTTPAddr, c.PublicURL = ln, ln.Addr().String(), "http://"+ln.Addr().String()
	}
}

// waitPackageURI waits for the Package URI lwota writes to the device's /5/0/1.
func waitPackageURI(t *testing.T, dev *lwm2mtest.Device) string {
	t.Helper()
	var uri string
	waitFor(t, "the Package URI on "+dev.Endpoint(), 20*time.Second, func() bool {
		v, _ := dev.Value(lwm2m.NewPath(5, 0, 1))
		uri = v.Str
		return uri != ""
	})
	return uri
}

// redirectLog is a device's HTTP client that remembers where it was redirected.
type redirectLog struct {
	mu   sync.Mutex
	urls []string
}

func (l *redirectLog) client() *http.Client {
	return &http.Client{Timeout: time.Minute, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		l.mu.Lock()
		l.urls = append(l.urls, req.URL.String())
		l.mu.Unlock()
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}}
}

func (l *redirectLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.urls)
}

// knock GETs uri from the loopback address from (127.0.0.2 is another host to lwota) without
// following a redirect, and returns the status and Location.
func knock(t *testing.T, uri, from string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(uri)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", uri, from, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// A device that speaks HTTP is given lwota's short http://.../fw/{token} URI and redirected to
// the image store: the local directory's signed /blobs/ URL, or a presigned S3 URL. Only the
// job's device, and only while the job delivers, is redirected (403 otherwise); a forged token
// is 404.
func TestUpdateHTTPPull(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			args := []string{"--allow-unsigned", "--update-poll", "300ms", "--http-pull"}
			var s3 s3test.Server
			if kind == "s3" {
				s3 = s3test.Start(t)
				s3.Setenv(t)
				args = append(args, "--s3-bucket", s3.Bucket, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region, "--s3-path-style")
			}
			ts := startServiceWith(t, t.TempDir(), "", listenHTTPFirst(t), args...)
			storeURL := ts.base + "/blobs/" // where the image store's URLs point
			if s3.Bucket != "" {
				storeURL = s3.Endpoint + "/" + s3.Bucket + "/"
			}
			body := fwImage("7.0.0", 32<<10)
			img := uploadImage(t, ts, "7.0.0", body)
			redirects := &redirectLog{}
			cfg := fleetConfig(lwm2mtest.DeliveryPull)
			cfg.Protocols = []int{lwm2mtest.ProtoCoAP, lwm2mtest.ProtoHTTP}
			cfg.HTTPClient = redirects.client()
			cfg.Faults.BytesPerSecond = 16 << 10 // two seconds: the job delivers while the test knocks
			dev := startFleet(t, ts, "http-"+kind, 1, cfg).Devices()[0]
			jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())

			uri := waitPackageURI(t, dev)
			if !strings.HasPrefix(uri, ts.base+"/fw/") || len(uri) > 255 {
				t.Fatalf("Package URI %q (%d characters): want lwota's %s/fw/{token}, at most 255", uri, len(uri), ts.base)
			}
			if code, loc := knock(t, uri, "127.0.0.1"); code != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, storeURL) {
				t.Errorf("the device's address while delivering: %d to %q, want 307 to %s...", code, loc, storeURL)
			}
			if code, loc := knock(t, uri, "127.0.0.2"); code != http.StatusForbidden || loc != "" {
				t.Errorf("another address while delivering: %d to %q, want 403", code, loc)
			}

			j := waitJobs(t, ts, jobs, 60*time.Second)[dev.Endpoint()]
			if j.State != fwupdate.StateSucceeded || j.Delivery != fwupdate.DeliveryHTTP || j.BytesDelivered != int64(len(body)) {
				t.Fatalf("job ended %s (%s), delivery %q, %d bytes; want succeeded by http, %d bytes", j.State, j.Reason, j.Delivery, j.BytesDelivered, len(body))
			}
			if v, _ := dev.Value(lwm2m.NewPath(3, 0, 3)); v.Str != "7.0.0" {
				t.Errorf("device reports %q after the update", v.Str)
			}
			got := redirects.list()
			if len(got) == 0 {
				t.Fatal("the device was never redirected")
			}
			for _, u := range got {
				if !strings.HasPrefix(u, storeURL) || (s3.Bucket != "" && !strings.Contains(u, "X-Amz-Signature=")) {
					t.Errorf("device redirected to %q, want a signed URL under %s", u, storeURL)
				}
			}

			forged := ts.base + "/fw/AWtJ4BBqb2IxlRG7vFYaT1hFG8SHBdBTRg"
			for _, c := range []struct {
				what, uri string
				want      int
			}{
				{"the job ended: its token opens nothing", uri, http.StatusForbidden},
				{"not lwota's token", forged, http.StatusNotFound},
			} {
				if code, _ := knock(t, c.uri, "127.0.0.1"); code != c.want {
					t.Errorf("%s: %d, want %d", c.what, code, c.want)
				}
			}
		})
	}
}

// Queue mode. A device that sleeps is not sent a request: its job waits until it wakes with
// an Update, then runs to the end. A device on a slow link that sends no Update while it
// downloads keeps its registration past its lifetime, its job shows the bytes served so far,
// and the update succeeds once it wakes.
func TestUpdateQueueMode(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	const awake = 2 * time.Second
	ts := startServiceWith(t, t.TempDir(), "", func(c *serveConfig) { c.UpdateConfig.ProgressInterval = 500 * time.Millisecond },
		"--allow-unsigned", "--update-poll", "300ms", "--awake-window", awake.String(), "--coap-ack-timeout", "300ms")
	body := fwImage("9.0.0", 32<<10)
	img := uploadImage(t, ts, "9.0.0", body)
	// The device listens a little longer than lwota believes it does, as it must: a request
	// sent at the edge of the window is still answered.
	sleepy := func() lwm2mtest.DeviceConfig {
		cfg := fleetConfig(lwm2mtest.DeliveryPull)
		cfg.Binding = "UQ"
		cfg.QueueWindow = awake + time.Second
		cfg.Lifetime = 30 * time.Second
		return cfg
	}
	asleepToLwota := func(t *testing.T, dev *lwm2mtest.Device) {
		t.Helper()
		waitFor(t, "lwota to take "+dev.Endpoint()+" for asleep", 20*time.Second, func() bool {
			reg, ok := ts.svc.core.Registry().Get(dev.Endpoint())
			return ok && time.Since(reg.LastSeen) > awake
		})
	}

	t.Run("waits while asleep", func(t *testing.T) {
		dev := startFleet(t, ts, "sleepy", 1, sleepy()).Devices()[0]
		// The device answers what lwota asks at its registration, lwota's window closes, then
		// the device sleeps: from now on any request it is sent is lost.
		asleepToLwota(t, dev)
		dev.Sleep()
		dropped := dev.Stats().Dropped
		jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())
		id := jobs[dev.Endpoint()]
		job := func() *fwupdate.Job {
			j, err := ts.svc.updates.Job(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		waitFor(t, "the job to wait", 10*time.Second, func() bool { return job().State == fwupdate.StateWaiting })
		for range 8 { // ~2 s, several poll intervals: the job keeps waiting
			time.Sleep(250 * time.Millisecond)
			if j := job(); j.State != fwupdate.StateWaiting {
				t.Fatalf("job %s (%s) while the device sleeps, want waiting", j.State, j.Reason)
			}
		}
		if n := dev.Stats().Dropped - dropped; n != 0 {
			t.Fatalf("lwota sent %d requests to the sleeping device", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dev.Wake(ctx); err != nil {
			t.Fatalf("wake: %v", err)
		}
		j := waitJobs(t, ts, jobs, 60*time.Second)[dev.Endpoint()]
		if j.State != fwupdate.StateSucceeded {
			t.Fatalf("job ended %s (%s)", j.State, j.Reason)
		}
		want := []fwupdate.State{fwupdate.StateQueued, fwupdate.StateWaiting, fwupdate.StateDelivering, fwupdate.StateDownloaded,
			fwupdate.StateUpdating, fwupdate.StateVerifying, fwupdate.StateSucceeded}
		if got := states(t, ts, id); !slices.Equal(got, want) {
			t.Errorf("history %v, want %v", got, want)
		}
	})

	t.Run("slow link past its lifetime", func(t *testing.T) {
		cfg := sleepy()
		cfg.Lifetime = 2 * time.Second
		cfg.Faults.BytesPerSecond = 4 << 10 // eight seconds for the image: four lifetimes
		dev := startFleet(t, ts, "slow", 1, cfg).Devices()[0]
		ep := dev.Endpoint()
		jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())
		waitPackageURI(t, dev)
		// From now on the device sends no Update by itself: it is busy downloading.
		f := dev.Faults()
		f.NoUpdates = true
		dev.SetFaults(f)
		first, ok := ts.svc.core.Registry().Get(ep)
		if !ok {
			t.Fatal("device not registered")
		}

		// Mid-transfer the stored job shows the bytes served so far, and so does the API.
		waitFor(t, "progress stored while delivering", 20*time.Second, func() bool {
			j, err := ts.svc.store.GetJob(context.Background(), jobs[ep])
			return err == nil && j.State == fwupdate.StateDelivering && j.BytesDelivered > 0 && j.BytesDelivered < int64(len(body))
		})
		var status struct {
			State          string `json:"state"`
			BytesDelivered int64  `json:"bytes_delivered"`
		}
		if code := ts.apiCall(t, "GET", "/api/v1/devices/"+ep+"/updates/"+jobs[ep], nil, &status); code != 200 ||
			status.State != "delivering" || status.BytesDelivered <= 0 || status.BytesDelivered >= int64(len(body)) {
			t.Errorf("update status while delivering: %d %+v, want 0 < bytes_delivered < %d", code, status, len(body))
		}

		// The lifetime runs out mid-transfer (the expiry sweep runs every second), and the
		// registration stays.
		var reg *registration.Registration
		waitFor(t, "the lifetime to run out", 20*time.Second, func() bool {
			reg, ok = ts.svc.core.Registry().Get(ep)
			return !ok || time.Now().After(reg.ExpiresAt().Add(1500*time.Millisecond))
		})
		if !ok || reg.ID != first.ID {
			t.Fatalf("registration %s lapsed mid-transfer", first.ID)
		}
		if s, _ := dev.FirmwareState(); s != lwm2mtest.FWDownloading {
			t.Fatalf("device in state %d once its lifetime ran out: the link is not slow enough for this test", s)
		}

		waitFor(t, "the download to end", time.Minute, func() bool {
			s, _ := dev.FirmwareState()
			return s == lwm2mtest.FWDownloaded
		})
		f.NoUpdates = false
		dev.SetFaults(f)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dev.Wake(ctx); err != nil {
			t.Fatalf("wake: %v", err)
		}
		j := waitJobs(t, ts, jobs, 60*time.Second)[ep]
		if j.State != fwupdate.StateSucceeded || j.BytesDelivered != int64(len(body)) {
			t.Fatalf("job ended %s (%s) with %d bytes delivered", j.State, j.Reason, j.BytesDelivered)
		}
		// Registered twice: at the start, and after installing; never because of a lapse.
		if st := dev.Stats(); st.Registrations != 2 || st.ImagesReceived != 1 {
			t.Errorf("device registered %d times and received %d images; want 2 and 1", st.Registrations, st.ImagesReceived)
		}
	})
}

// A device with a PSK registers over DTLS and is given a coaps:// Package URI (never coap://,
// though it lists CoAP too), downloads over DTLS and is updated. The same token over plain
// CoAP is refused: the DTLS identity, not the address, names the device.
func TestUpdateDTLSPull(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	client := sysdeps.Require(t, "coap-client-notls")
	ts := startService(t, t.TempDir(), "", "--allow-unsigned", "--update-poll", "300ms", "--allow-nosec=false")
	body := fwImage("10.0.0", 48<<10)
	img := uploadImage(t, ts, "10.0.0", body)
	const ep, identity = "dtls-pull-1", "dtls-pull-id"
	key := []byte("dtls-pull-secret")
	cred := map[string]any{"psk": map[string]string{"identity": identity, "key": hex.EncodeToString(key)}}
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/"+ep+"/credentials", cred, nil); code != 204 {
		t.Fatalf("PUT credentials: status %d", code)
	}
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Endpoint, cfg.PSKIdentity, cfg.PSK = ep, identity, key
	cfg.Protocols = []int{lwm2mtest.ProtoCoAP, lwm2mtest.ProtoCoAPS}
	cfg.Faults.BytesPerSecond = 32 << 10 // the job still delivers while libcoap knocks
	dev := lwm2mtest.NewDevice(cfg, nil)
	t.Cleanup(func() { _ = dev.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dev.Start(ctx, ts.svc.core.CoAPSAddr().String()); err != nil {
		t.Fatalf("register over DTLS: %v", err)
	}
	jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())

	uri := waitPackageURI(t, dev)
	wantPrefix := "coaps://" + ts.svc.core.CoAPSAddr().String() + "/fw/"
	if !strings.HasPrefix(uri, wantPrefix) {
		t.Fatalf("Package URI %q, want %s{token}", uri, wantPrefix)
	}
	plain := "coap://" + ts.coap + uri[strings.LastIndex(uri, "/fw/"):]
	if out, _ := exec.Command(client, "-m", "get", "-B", "5", plain).CombinedOutput(); !strings.Contains(string(out), "4.03") {
		t.Errorf("the DTLS job's token over plain CoAP: %q, want 4.03", out)
	}

	j := waitJobs(t, ts, jobs, 60*time.Second)[ep]
	if j.State != fwupdate.StateSucceeded || j.Delivery != fwupdate.DeliveryCoAPS || j.BytesDelivered != int64(len(body)) {
		t.Fatalf("job ended %s (%s), delivery %q, %d bytes; want succeeded by coaps, %d bytes", j.State, j.Reason, j.Delivery, j.BytesDelivered, len(body))
	}
	if v, _ := dev.Value(lwm2m.NewPath(3, 0, 3)); v.Str != "10.0.0" {
		t.Errorf("device reports %q after the update", v.Str)
	}
	if st := dev.Stats(); st.ImagesReceived != 1 || st.BytesDownloaded != uint64(len(body)) {
		t.Errorf("device received %d images, %d bytes; want 1, %d", st.ImagesReceived, st.BytesDownloaded, len(body))
	}
}

// A Package URI outlives its token only until the token's expiry (TokenTTL from the job's
// creation): then libcoap's client gets 4.04 "expired", like any token lwota did not mint.
func TestUpdatePullExpiredToken(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	client := sysdeps.Require(t, "coap-client-notls")
	const ttl = 2 * time.Second
	ts := startServiceWith(t, t.TempDir(), "", func(c *serveConfig) { c.UpdateConfig.TokenTTL = ttl },
		"--allow-unsigned", "--update-poll", "300ms")
	img := uploadImage(t, ts, "11.0.0", fwImage("11.0.0", 64<<10))
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Faults.BytesPerSecond = 2 << 10 // still downloading when the token expires
	dev := startFleet(t, ts, "expiry", 1, cfg).Devices()[0]
	jobs := startUpdates(t, ts, []*lwm2mtest.Device{dev}, img, fwupdate.MethodPull, quickPolicy())
	j, err := ts.svc.updates.Job(context.Background(), jobs[dev.Endpoint()])
	if err != nil {
		t.Fatal(err)
	}
	uri := waitPackageURI(t, dev)
	// The expiry is whole seconds: it comes at most ttl after the job's creation.
	expired := j.CreatedAt.Add(ttl)
	waitFor(t, "the token to expire", 10*time.Second, func() bool { return time.Now().After(expired) })
	out, _ := exec.Command(client, "-m", "get", "-B", "5", uri).CombinedOutput()
	if !strings.Contains(string(out), "4.04") || !strings.Contains(string(out), "expired") {
		t.Fatalf("fetch %s after its expiry: %q, want 4.04 expired", uri, out)
	}
	if st := dev.Stats(); st.BytesDownloaded == 0 {
		t.Errorf("the device downloaded nothing before the expiry: %+v", st)
	}
}
