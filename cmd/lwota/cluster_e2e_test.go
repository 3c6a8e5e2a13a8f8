package main

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/credentials/keyring"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/s3test"
)

// testClusterKey is the --cluster-key of the cluster tests' nodes.
const testClusterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// fetchAt downloads the firmware URI uri (minted by any node) from the node ts with libcoap's
// Block2 client, as a device handed over by the load balancer would, and returns what came and
// the client's output.
func fetchAt(t *testing.T, ts *testService, uri string) ([]byte, string) {
	t.Helper()
	client := sysdeps.Require(t, "coap-client-notls")
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("package URI %q: %v", uri, err)
	}
	u.Host = ts.coap
	path := filepath.Join(t.TempDir(), "fw.bin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, client, "-m", "get", "-B", "10", "-o", path, u.String()).CombinedOutput()
	body, _ := os.ReadFile(path)
	return body, string(out)
}

// Two nodes on one PostgreSQL and one S3 bucket share the download-token and credential keys
// through the keyring: a token minted at A is served at B, a PSK written through A opens the
// handshake at B, and rotating either key (with re-seal and retirement) loses no download and
// no device.
func TestClusterSecrets(t *testing.T) {
	sysdeps.Require(t, "coap-client-notls")
	sysdeps.Require(t, "coap-client-openssl")
	dsn := pgtest.Start(t)
	srv := s3test.Start(t)
	srv.Setenv(t)
	common := []string{"--allow-unsigned", "--cluster", "--cluster-key", testClusterKey,
		"--update-poll", "300ms", "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region, "--s3-path-style"}
	a := startService(t, t.TempDir(), dsn, append(common, "--node-name", "node-a", "--cluster-key-poll", "200ms")...)
	// B never polls within the test: it must learn of A's rotations the moment a token or a
	// credential needs the new key, or a device handed to it by the load balancer would fail.
	b := startService(t, t.TempDir(), dsn, append(common, "--node-name", "node-b", "--cluster-key-poll", "1h")...)

	t.Run("download token", func(t *testing.T) {
		body := fwImage("3.0.0", 32<<10)
		img := uploadImage(t, a, "3.0.0", body)
		cfg := fleetConfig(lwm2mtest.DeliveryPull)
		cfg.Faults.BytesPerSecond = 4 << 10 // 8 s a download: still running through the rotation
		devs := startFleet(t, a, "tok", 4, cfg).Devices()
		jobs := startUpdates(t, a, devs[:2], img, fwupdate.MethodPull, quickPolicy())
		old := waitPackageURI(t, devs[0])
		if got, out := fetchAt(t, b, old); string(got) != string(body) {
			t.Fatalf("token minted at A, fetched at B: %d bytes of %d (%q)", len(got), len(body), out)
		}

		for _, d := range devs[:2] {
			if st := d.Stats(); st.ImagesReceived != 0 {
				t.Fatalf("%s finished its download before the rotation: the test would prove nothing", d.Endpoint())
			}
		}
		// Rotated with the CLI, as an operator would.
		out, errOut, err := cli(t, "cluster", "rotate-key", "--server", a.base, "--token", testAdminToken, "download-token")
		if err != nil || out != "download-token: 2 active, 1 accepted\n" {
			t.Fatalf("lwota cluster rotate-key download-token: %v %q %q", err, out, errOut)
		}
		for ep, id := range startUpdates(t, a, devs[2:], img, fwupdate.MethodPull, quickPolicy()) {
			jobs[ep] = id
		}
		fresh := waitPackageURI(t, devs[2])
		if tokenOf(fresh) == tokenOf(old) {
			t.Fatal("the new job's token equals the old one's")
		}
		// B serves the new token at once; the old one keeps working there.
		if got, out := fetchAt(t, b, fresh); string(got) != string(body) {
			t.Fatalf("token minted with the rotated key, fetched at B: %d bytes (%q)", len(got), out)
		}
		if got, out := fetchAt(t, b, old); string(got) != string(body) {
			t.Fatalf("old token at B after the rotation: %d bytes (%q)", len(got), out)
		}
		for ep, j := range waitJobs(t, a, jobs, 2*time.Minute) {
			if j.State != fwupdate.StateSucceeded {
				t.Errorf("%s: job %s (%s) across the rotation", ep, j.State, j.Reason)
			}
		}
	})

	t.Run("credentials", func(t *testing.T) {
		put := func(ep, id, key string) {
			body := map[string]any{"psk": map[string]string{"identity": id, "key": hex.EncodeToString([]byte(key))}}
			if code := a.apiCall(t, "PUT", "/api/v1/devices/"+ep+"/credentials", body, nil); code != 204 {
				t.Fatalf("PUT credentials %s at A: %d", ep, code)
			}
		}
		// A registration answers 2.01 without a payload, so libcoap prints nothing; a failed
		// handshake prints DTLS alerts.
		registersAt := func(ts *testService, id, key, ep string) bool {
			if out := coapsRegister(t, ts, id, key, ep); strings.Contains(out, "ERR") || strings.Contains(out, "WARN") {
				return false
			}
			var dev deviceJSON
			return ts.apiCall(t, "GET", "/api/v1/devices/"+ep, nil, &dev) == 200 && dev.Online
		}
		registersAtB := func(id, key, ep string) bool { return registersAt(b, id, key, ep) }
		put("psk-1", "id-psk-1", "first-secret-1")
		if !registersAtB("id-psk-1", "first-secret-1", "psk-1") {
			t.Fatal("PSK written at A: no registration at B")
		}

		if code := a.apiCall(t, "POST", "/api/v1/cluster/keys/credential-seal/rotate", nil, nil); code != 200 {
			t.Fatalf("rotate the credential-seal key at A: %d", code)
		}
		put("psk-2", "id-psk-2", "second-secret-2") // sealed with key 2
		// The simulated device (pion DTLS) registers at B with the PSK sealed with key 2.
		cfg := fleetConfig(lwm2mtest.DeliveryPull)
		cfg.Endpoint, cfg.PSKIdentity, cfg.PSK = "psk-2", "id-psk-2", []byte("second-secret-2")
		dev := lwm2mtest.NewDevice(cfg, nil)
		t.Cleanup(func() { _ = dev.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dev.Start(ctx, b.svc.core.CoAPSAddr().String()); err != nil {
			t.Fatalf("PSK sealed with the rotated key at A: the simulated device's registration at B: %v", err)
		}
		if !registersAtB("id-psk-1", "first-secret-1", "psk-1") {
			t.Fatal("PSK sealed with the old key: no registration at B after the rotation")
		}
		var apiErr struct {
			Error struct{ Code string } `json:"error"`
		}
		if code := b.apiCall(t, "DELETE", "/api/v1/cluster/keys/credential-seal/1", nil, &apiErr); code != 409 || apiErr.Error.Code != "key_in_use" {
			t.Fatalf("retire key 1 while psk-1 is sealed with it: %d %+v, want 409 key_in_use", code, apiErr)
		}
		var res struct{ Resealed, Skipped int }
		if code := b.apiCall(t, "POST", "/api/v1/cluster/keys/credential-seal/reseal", nil, &res); code != 200 || res.Resealed != 1 {
			t.Fatalf("re-seal at B: %d %+v; want 1 row", code, res)
		}
		var set clusterKeySet
		if code := a.apiCall(t, "DELETE", "/api/v1/cluster/keys/credential-seal/1", nil, &set); code != 200 || len(set.Keys) != 1 || set.Keys[0].ID != 2 {
			t.Fatalf("retire key 1 after the re-seal: %d %+v", code, set)
		}
		out, _, err := cli(t, "cluster", "keys", "--server", b.base, "--token", testAdminToken)
		if err != nil || !strings.Contains(out, "credential-seal: 2 active\n") {
			t.Fatalf("lwota cluster keys: %v %q", err, out)
		}
		_, _, err = cli(t, "cluster", "retire-key", "--server", b.base, "--token", testAdminToken, "credential-seal", "2")
		if err == nil || !strings.Contains(err.Error(), "key_active") {
			t.Fatalf("lwota cluster retire-key of the active key: %v, want key_active", err)
		}
		// A, which retired key 1, holds key 2 alone: the re-sealed PSK opens with it.
		if !registersAt(a, "id-psk-1", "first-secret-1", "psk-1") {
			t.Fatal("re-sealed PSK: no registration at A after key 1 was retired")
		}
	})

	t.Run("wrong cluster key", func(t *testing.T) {
		ctx := context.Background()
		before, err := a.svc.store.ClusterKeys(ctx, keyring.DownloadToken)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := parseServeFlags([]string{"--data-dir", t.TempDir(), "--database", dsn, "--cluster",
			"--cluster-key", strings.Repeat("ab", 32), "--coap-addr", "127.0.0.1:0", "--coaps-addr", "127.0.0.1:0",
			"--http-addr", "127.0.0.1:0", "--allow-nosec"}, io.Discard, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newService(ctx, cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--cluster-key") {
			t.Fatalf("start with another cluster key: %v, want an error naming --cluster-key", err)
		}
		after, _ := a.svc.store.ClusterKeys(ctx, keyring.DownloadToken)
		if len(after) != len(before) {
			t.Fatalf("a refused node changed the keyring: %d keys, then %d", len(before), len(after))
		}
	})
}

// clusterKeySet is a purpose's keys as the API shows them.
type clusterKeySet struct {
	Purpose string `json:"purpose"`
	Keys    []struct {
		ID    uint32 `json:"id"`
		State string `json:"state"`
	} `json:"keys"`
}

// tokenOf is the last path segment of a firmware URI.
func tokenOf(uri string) string { return uri[strings.LastIndex(uri, "/")+1:] }

// --cluster without --cluster-key, or with a malformed one, refuses to start.
func TestClusterKeyFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"cluster without key", []string{"--cluster"}, nil, "--cluster needs --cluster-key"},
		{"short key", []string{"--cluster", "--cluster-key", "abcd"}, nil, "64 hex characters"},
		{"not hex", []string{"--cluster", "--cluster-key", strings.Repeat("zz", 32)}, nil, "64 hex characters"},
		{"bad env key", []string{"--cluster"}, map[string]string{"LWOTA_CLUSTER_KEY": "00"}, "64 hex characters"},
		{"node-local credential key", []string{"--cluster", "--cluster-key", testClusterKey, "--credential-key", testClusterKey}, nil, "node-local"},
		{"import without key", []string{"--cluster-import-keys"}, nil, "needs --cluster-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--database", "postgres://nowhere/lwota"}, tc.args...)
			_, err := parseServeFlags(args, io.Discard, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	cfg, err := parseServeFlags([]string{"--database", "postgres://nowhere/lwota", "--cluster"}, io.Discard,
		func(k string) string { return map[string]string{"LWOTA_CLUSTER_KEY": testClusterKey}[k] })
	if err != nil || cfg.ClusterKey != testClusterKey {
		t.Fatalf("LWOTA_CLUSTER_KEY: %v, key %q", err, cfg.ClusterKey)
	}
}

// A single node moves into a cluster: a second node cannot start over its credentials with a
// fresh key; the node itself, started with --cluster-import-keys, keeps its download tokens and
// PSKs valid, now from the keyring.
func TestClusterImportKeys(t *testing.T) {
	sysdeps.Require(t, "coap-client-openssl")
	dsn := pgtest.Start(t)
	dir := t.TempDir()
	single := startService(t, dir, dsn)
	body := map[string]any{"psk": map[string]string{"identity": "id-imp", "key": hex.EncodeToString([]byte("imported-psk"))}}
	if code := single.apiCall(t, "PUT", "/api/v1/devices/imp-1/credentials", body, nil); code != 204 {
		t.Fatalf("PUT credentials: %d", code)
	}
	if code := single.apiCall(t, "GET", "/api/v1/cluster/keys", nil, nil); code != 404 {
		t.Fatalf("cluster keys of a node keeping its keys in DATA_DIR: %d, want 404", code)
	}
	tok, err := single.svc.secrets.tokens.Mint("job-imp", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	single.shutdown(t)

	// Another node, without the single node's key: refused, and nothing written.
	cfg, err := parseServeFlags([]string{"--data-dir", t.TempDir(), "--database", dsn, "--cluster", "--cluster-key", testClusterKey,
		"--coap-addr", "127.0.0.1:0", "--coaps-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newService(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--cluster-import-keys") {
		t.Fatalf("a node without the sealing key over sealed credentials: %v, want a refusal naming --cluster-import-keys", err)
	}

	node := startService(t, dir, dsn, "--cluster", "--cluster-key", testClusterKey, "--cluster-import-keys")
	if job, err := node.svc.secrets.tokens.Parse(tok); err != nil || job != "job-imp" {
		t.Fatalf("a token of the single node after the import: %q, %v", job, err)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/v1/cluster/keys/url-signing/rotate", 404},
		{"POST", "/api/v1/cluster/keys/download-token/reseal", 400},
		{"DELETE", "/api/v1/cluster/keys/download-token/x", 400},
		{"DELETE", "/api/v1/cluster/keys/download-token/9", 404},
		{"DELETE", "/api/v1/cluster/keys/download-token/1", 409}, // the active key
	} {
		if code := node.apiCall(t, c.method, c.path, nil, nil); code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, code, c.want)
		}
	}
	coapsRegister(t, node, "id-imp", "imported-psk", "imp-1")
	var dev deviceJSON
	if code := node.apiCall(t, "GET", "/api/v1/devices/imp-1", nil, &dev); code != 200 || !dev.Online {
		t.Fatalf("a PSK of the single node after the import: %d %+v", code, dev)
	}
}
