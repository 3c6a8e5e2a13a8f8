package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/nginxtest"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// benchClusterCommand is `lwota bench cluster`: registrations/s and firmware Block2 blocks/s of
// one node reached directly, the same node behind nginx, and three nodes behind nginx, in one
// run on one PostgreSQL database and one S3 bucket, printed as ratios (3 nodes / 1 node behind
// nginx, nginx / direct). The nodes are child processes; so is the registering fleet (lwota sim);
// the pulls run in this process.
func benchClusterCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench cluster", stderr)
	devices := fs.Int("devices", 2000, "devices registering in each of the three runs (new endpoints each run)")
	concurrency := fs.Int("concurrency", 64, "registrations in flight at once")
	pullDevices := fs.Int("pull-devices", 64, "devices pulling the image at once in each pull run")
	duration := fs.Duration("duration", 20*time.Second, "how long each pull run lasts")
	postgres := fs.String("postgres", "", "postgres:// URL of an empty database the nodes share (default: a throwaway PostgreSQL of this run's own)")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	if *devices < 1 || *concurrency < 1 || *pullDevices < 1 || *duration <= 0 {
		return usagef("bench cluster: --devices, --concurrency, --pull-devices and --duration must be positive")
	}
	c, err := startLocalCluster(ctx, localClusterConfig{Nodes: 3, Postgres: *postgres, S3: true,
		Args: []string{"--allow-nosec", "--allow-unsigned", "--trusted-proxies", "127.0.0.1", "--log-level", "error"}})
	if err != nil {
		return fmt.Errorf("bench cluster: %w", err)
	}
	defer c.Close()
	balancer := func(name string, nodes ...*localNode) (*nginxtest.Balancer, error) {
		dir := filepath.Join(c.Dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var coap []string
		for _, n := range nodes {
			coap = append(coap, n.CoAP)
		}
		return nginxtest.StartIn(ctx, dir, nginxtest.Upstream{Name: "coap", Backends: coap})
	}
	one, err := balancer("nginx-1", c.Nodes[0])
	if err != nil {
		return fmt.Errorf("bench cluster: %w", err)
	}
	defer one.Stop()
	three, err := balancer("nginx-3", c.Nodes...)
	if err != nil {
		return fmt.Errorf("bench cluster: %w", err)
	}
	defer three.Stop()
	runs := []struct{ name, addr string }{
		{"1 node, direct", c.Nodes[0].CoAP},
		{"1 node behind nginx", one.Addr("coap")},
		{"3 nodes behind nginx", three.Addr("coap")},
	}
	nodesCPU := func() time.Duration {
		var sum time.Duration
		for _, n := range c.Nodes {
			sum += procCPU(n.Pid())
		}
		return sum
	}
	fmt.Fprintf(stdout, "cluster bench: nodes on one PostgreSQL and one S3 bucket on loopback; %d devices registering per run, %d in flight\n", *devices, *concurrency)
	regs := make([]float64, len(runs))
	for i, r := range runs {
		rr, err := runFleet(ctx, benchConfig{Devices: *devices, Concurrency: *concurrency, Client: "sim"}, r.addr, nodesCPU, nil, stderr)
		if err != nil {
			return fmt.Errorf("bench cluster: %s: %w", r.name, err)
		}
		regs[i] = rr.Rate
		fmt.Fprintf(stdout, "registrations, %s: %.0f/s (server CPU %s each, all nodes)\n", r.name, rr.Rate, micros(rr.CPUPerReg))
	}
	fmt.Fprintf(stdout, "registrations: nginx/direct %.2f, 3 nodes/1 node (behind nginx) %.2f, 3 nodes/1 node direct %.2f\n",
		regs[1]/regs[0], regs[2]/regs[1], regs[2]/regs[0])

	uri, stop, err := benchClusterJob(ctx, c)
	if err != nil {
		return fmt.Errorf("bench cluster: pull: %w", err)
	}
	defer stop()
	fmt.Fprintf(stdout, "firmware pull: %d devices pulling one job's image (1 KiB blocks) for %v per run\n", *pullDevices, *duration)
	pulls := make([]float64, len(runs))
	for i, r := range runs {
		u, _ := url.Parse(uri)
		u.Host = r.addr
		rep, err := lwm2mtest.PullLoad(ctx, lwm2mtest.PullConfig{URI: u.String(), Devices: *pullDevices, Duration: *duration})
		if err != nil {
			return fmt.Errorf("bench cluster: pull, %s: %w", r.name, err)
		}
		if rep.Blocks == 0 {
			return fmt.Errorf("bench cluster: pull, %s: no block served (%d errors, first %q)", r.name, rep.Errors, rep.FirstError)
		}
		pulls[i] = rep.BlocksPerSec
		fmt.Fprintf(stdout, "blocks, %s: %.0f/s (%d retransmits, %d errors)\n", r.name, rep.BlocksPerSec, rep.Retransmits, rep.Errors)
	}
	fmt.Fprintf(stdout, "blocks: nginx/direct %.2f, 3 nodes/1 node (behind nginx) %.2f, 3 nodes/1 node direct %.2f\n",
		pulls[1]/pulls[0], pulls[2]/pulls[1], pulls[2]/pulls[0])
	return nil
}

// benchClusterJob uploads an image through the first node, registers one device there whose
// own download crawls (so that its pull job stays delivering through the runs) and starts the
// job; it returns the job's Package URI, which every node serves (one keyring, one database).
func benchClusterJob(ctx context.Context, c *localCluster) (string, func(), error) {
	n := c.Nodes[0]
	img := make([]byte, pullBenchImageSize)
	copy(img, "LWOTA-FW 2.0.0\n")
	call := func(method, path string, body io.Reader, hdr map[string]string, out any) error {
		req, err := http.NewRequestWithContext(ctx, method, n.API+path, body)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return json.Unmarshal(raw, out)
	}
	var im struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/api/v1/images", bytes.NewReader(img), map[string]string{"Content-Type": "application/octet-stream",
		"X-Lwota-Name": "bench", "X-Lwota-Version": "2.0.0", "X-Lwota-Model": "sim-1"}, &im); err != nil {
		return "", nil, err
	}
	cfg := lwm2mtest.DeviceConfig{Endpoint: "bench-cluster-pull", Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1",
		Manufacturer: "lwota", Model: "sim-1", FirmwareVersion: "1.0.0", Delivery: lwm2mtest.DeliveryPull,
		ContentFormats: []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLCBOR}, RequestTimeout: 30 * time.Second}
	cfg.Faults.BytesPerSecond = 16 // a 1 MiB image: the job stays delivering for the whole bench
	dev := lwm2mtest.NewDevice(cfg, nil)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := dev.Start(rctx, n.CoAP); err != nil {
		dev.Close()
		return "", nil, err
	}
	// force: the device's model may not be read yet (the server reads /3/0 after the Register).
	body, _ := json.Marshal(map[string]any{"image_id": im.ID, "method": "pull", "force": true})
	var job struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/api/v1/devices/"+cfg.Endpoint+"/updates", bytes.NewReader(body), map[string]string{"Content-Type": "application/json"}, &job); err != nil {
		dev.Close()
		return "", nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if v, _ := dev.Value(lwm2m.NewPath(5, 0, 1)); v.Str != "" {
			return v.Str, func() { _ = dev.Close() }, nil
		}
		if time.Now().After(deadline) {
			dev.Close()
			return "", nil, fmt.Errorf("job %s: no Package URI written to the device within a minute", job.ID)
		}
		select {
		case <-ctx.Done():
			dev.Close()
			return "", nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
