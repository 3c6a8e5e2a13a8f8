package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/registration"
)

// benchCampaignCommand is `lwota bench campaign`: an end-to-end rollout to many simulated
// devices through the REST API, against a baseline measured in the same run on the same
// devices: the same number of single-device updates started straight on the driver. The ratio
// is what the campaign machinery (selection, waves, pacing, following jobs) costs.
func benchCampaignCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench campaign", stderr)
	devices := fs.Int("devices", 10000, "simulated devices")
	imageSize := fs.Int("image-size", 64<<10, "image size in bytes")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long per run")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	token := "bench-" + hex.EncodeToString(secret)
	svc, err := startBenchService(ctx, "campaign", []string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "", "--allow-nosec", "--allow-unsigned",
		"--http-addr", "127.0.0.1:0", "--admin-token", token, "--update-poll", "5s", "--campaign-tick", "250ms"}, nil, slog.LevelWarn, stderr)
	if err != nil {
		return err
	}
	defer svc.stop()
	api := benchAPI{base: "http://" + svc.httpLn.Addr().String(), token: token}
	if _, _, err := runCampaignBench(ctx, svc, api, *devices, *imageSize, *timeout, stdout); err != nil {
		return err
	}
	svc.stop()
	return nil
}

// runCampaignBench registers devices simulated devices (bench-NNNNNN, model sim-1, firmware
// 1.0.0, answering Object 5 by pull) with svc, updates them all to 2.0.0 by single-device
// updates started at once (the baseline), then to 3.0.0 by a campaign selecting them by model
// and version, and prints both rates. It returns the devices/s of each.
func runCampaignBench(ctx context.Context, svc *benchService, api benchAPI, devices, imageSize int, timeout time.Duration, stdout io.Writer) (float64, float64, error) {
	cfg := lwm2mtest.DeviceConfig{Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1", Manufacturer: "lwota", Model: "sim-1",
		FirmwareVersion: "1.0.0", Delivery: lwm2mtest.DeliveryPull, UpdateDelay: 50 * time.Millisecond,
		BlockTimeout: 2 * time.Second, BlockRetries: 8, RequestTimeout: 30 * time.Second, RegisterRetry: time.Second}
	fleet := lwm2mtest.NewFleet(devices, cfg, func(i int) string { return fmt.Sprintf("bench-%06d", i) }, nil)
	defer fleet.Close()
	rep, err := fleet.Start(ctx, svc.core.Addr().String(), 64)
	if err != nil {
		return 0, 0, fmt.Errorf("bench campaign: register: %w", err)
	}
	fmt.Fprintf(stdout, "fleet: %d devices registered in %s\n", devices, rep.Duration.Round(time.Millisecond))

	// Baseline: version 2 to every device by single-device updates, all started at once.
	img2, err := api.upload(benchImage("2.0.0", imageSize), "2.0.0")
	if err != nil {
		return 0, 0, err
	}
	begin := time.Now()
	ids := make([]string, 0, devices)
	for _, d := range fleet.Devices() {
		j, err := svc.updates.Start(ctx, d.Endpoint(), fwupdate.StartRequest{ImageID: img2, Method: fwupdate.MethodPull})
		if err != nil {
			return 0, 0, fmt.Errorf("bench campaign: baseline start %s: %w", d.Endpoint(), err)
		}
		ids = append(ids, j.ID)
	}
	if err := waitDriverJobs(ctx, svc.updates, ids, timeout); err != nil {
		return 0, 0, err
	}
	direct := time.Since(begin)
	directRate := float64(devices) / direct.Seconds()
	fmt.Fprintf(stdout, "baseline: %d single-device updates (%d KiB image): %s, %.0f devices/s\n", devices, imageSize>>10, direct.Round(time.Millisecond), directRate)

	// The campaign: version 3 to the same devices, selected by model and firmware version.
	img3, err := api.upload(benchImage("3.0.0", imageSize), "3.0.0")
	if err != nil {
		return 0, 0, err
	}
	// The campaign selects by the version lwota read from each device after its reboot. On a
	// loaded machine the last devices' versions came in after more than a minute, and under
	// bench fleet at 250,000 devices lwota lost a few (its log: "keep device info ... context
	// deadline exceeded"; 11 of 10,000 after 5 minutes): up to 1 % missing, the campaign goes on
	// over the others and says so.
	v2 := "2.0.0"
	waitVersions := time.Now().Add(5 * time.Minute)
	for {
		regs, err := svc.core.ListDevices(ctx, registration.Filter{FirmwareVersion: v2})
		if err != nil {
			return 0, 0, err
		}
		if len(regs) == devices {
			break
		}
		if time.Now().After(waitVersions) {
			if len(regs) < devices*99/100 {
				return 0, 0, fmt.Errorf("bench campaign: lwota knows version %s of %d devices, want %d", v2, len(regs), devices)
			}
			fmt.Fprintf(stdout, "campaign: lwota knows version %s of only %d of the %d devices after 5 minutes: the campaign selects those\n", v2, len(regs), devices)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	begin = time.Now()
	var c struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Progress struct {
			Total  int            `json:"total"`
			Counts map[string]int `json:"counts"`
		} `json:"progress"`
	}
	body := map[string]any{"name": "bench", "image_id": img3, "selector": map[string]any{"query": `model = "sim-1" and firmware = "2.0.0"`},
		"waves": []map[string]any{{"percent": 1}, {"percent": 10}, {"percent": 100}}, "start": true}
	if err := api.call("POST", "/api/v1/campaigns", body, &c); err != nil {
		return 0, 0, err
	}
	created := time.Since(begin)
	deadline := time.Now().Add(timeout)
	for c.State != "completed" {
		if c.State != "running" && c.State != "scheduled" {
			return 0, 0, fmt.Errorf("bench campaign: campaign %s", c.State)
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("bench campaign: not completed after %s: %v", timeout, c.Progress.Counts)
		}
		time.Sleep(250 * time.Millisecond)
		if err := api.call("GET", "/api/v1/campaigns/"+c.ID, nil, &c); err != nil {
			return 0, 0, err
		}
	}
	took := time.Since(begin)
	rate := float64(c.Progress.Total) / took.Seconds()
	updated := 0
	for _, d := range fleet.Devices() {
		if v, _ := d.Value(lwm2m.NewPath(3, 0, 3)); v.Str == "3.0.0" {
			updated++
		}
	}
	fmt.Fprintf(stdout, "campaign: %d devices (%d selected, %d on 3.0.0, waves 1/10/100 %%): created in %s, completed in %s, %.0f devices/s (%.2f of the baseline)\n",
		devices, c.Progress.Total, updated, created.Round(time.Millisecond), took.Round(time.Millisecond), rate, rate/directRate)
	return directRate, rate, nil
}

func benchImage(version string, size int) []byte {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	copy(b, "LWOTA-FW "+version+"\n")
	return b
}

// waitDriverJobs waits until every job ended, and fails when one did not succeed.
func waitDriverJobs(ctx context.Context, d *fwupdate.Driver, ids []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i := 0; i < len(ids); {
		j, err := d.Job(ctx, ids[i])
		if err != nil {
			return err
		}
		if !j.Active() {
			if j.State != fwupdate.StateSucceeded {
				return fmt.Errorf("bench campaign: job %s for %s %s: %s", j.ID, j.Endpoint, j.State, j.Reason)
			}
			i++
			continue
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench campaign: job %s still %s after %s", j.ID, j.State, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// benchAPI is a minimal REST client for the benchmark.
type benchAPI struct{ base, token string }

func (a benchAPI) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

func (a benchAPI) upload(img []byte, version string) (string, error) {
	return a.uploadFor(img, version, "sim-1")
}

// uploadFor uploads an image built for model ("": any device).
func (a benchAPI) uploadFor(img []byte, version, model string) (string, error) {
	req, err := http.NewRequest("POST", a.base+"/api/v1/images", bytes.NewReader(img))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Lwota-Name", "bench")
	req.Header.Set("X-Lwota-Version", version)
	if model != "" {
		req.Header.Set("X-Lwota-Model", model)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || json.Unmarshal(b, &out) != nil {
		return "", fmt.Errorf("upload %s: %d %s", version, resp.StatusCode, b)
	}
	return out.ID, nil
}
