package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/api"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
	"github.com/lwota/lwota/server/apitoken"
)

// cliCatalog is a fake firmware catalog behind the real API handler: the CLI tests check what the
// commands send and print, not verification (the lead's end-to-end tests run the real catalog).
type cliCatalog struct {
	mu        sync.Mutex
	images    []*firmware.Image
	keys      []*signing.Key
	uploads   []cliUpload
	uploadErr error
}

type cliUpload struct {
	req  firmware.UploadRequest
	body []byte
}

func (c *cliCatalog) Upload(_ context.Context, req firmware.UploadRequest, body io.Reader) (*firmware.Image, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("firmware: read: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploads = append(c.uploads, cliUpload{req, b})
	if c.uploadErr != nil {
		return nil, c.uploadErr
	}
	sum := sha256.Sum256(b)
	if req.SHA256 != "" && req.SHA256 != hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%w: got %x", firmware.ErrHashMismatch, sum)
	}
	img := &firmware.Image{ID: fmt.Sprintf("img-%d", len(c.uploads)), Name: req.Name, Version: req.Version, Target: req.Target,
		Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Signature: req.Signature, SignatureAlg: signing.Ed25519,
		KeyID: "key-1", CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ReleaseNotes: req.ReleaseNotes, Labels: req.Labels}
	c.images = append(c.images, img)
	return img, nil
}

func (c *cliCatalog) Image(_ context.Context, id string) (*firmware.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, img := range c.images {
		if img.ID == id {
			return img, nil
		}
	}
	return nil, firmware.ErrNotFound
}

func (c *cliCatalog) Images(_ context.Context, f firmware.ImageFilter) ([]*firmware.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*firmware.Image
	for _, img := range c.images {
		if img.ID > f.After && (f.Model == "" || img.Target.Model == f.Model) && (f.Version == "" || img.Version == f.Version) &&
			(f.Labels == nil || reflect.DeepEqual(f.Labels, img.Labels)) {
			out = append(out, img)
		}
		if len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (c *cliCatalog) Delete(context.Context, string) error { return errors.New("not used") }

func (c *cliCatalog) Open(context.Context, string, int64, int64) (io.ReadCloser, *firmware.Image, error) {
	return nil, nil, errors.New("not used")
}

func (c *cliCatalog) AddKey(_ context.Context, name string, pem []byte) (*signing.Key, error) {
	if !bytes.HasPrefix(pem, []byte("-----BEGIN PUBLIC KEY-----")) {
		return nil, fmt.Errorf("%w: no PEM public key", firmware.ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := &signing.Key{ID: fmt.Sprintf("key-%d", len(c.keys)+1), Name: name, Algorithm: signing.Ed25519, PublicKeyPEM: string(pem),
		Fingerprint: "f00d", CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c.keys = append(c.keys, k)
	return k, nil
}

func (c *cliCatalog) Keys(context.Context) ([]*signing.Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*signing.Key(nil), c.keys...), nil
}

func (c *cliCatalog) RevokeKey(_ context.Context, id string) (*signing.Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.keys {
		if k.ID == id {
			k.RevokedAt = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			return k, nil
		}
	}
	return nil, firmware.ErrKeyNotFound
}

// apiServer runs the real API handler over a fake catalog on loopback, recording each request's headers.
type apiServer struct {
	*httptest.Server
	cat     *cliCatalog
	mu      sync.Mutex
	headers []http.Header
	lengths []int64
}

func newAPIServer(t *testing.T, cfg api.Config, maxUpload int64) *apiServer {
	t.Helper()
	s := &apiServer{cat: &cliCatalog{}}
	h := api.New(cfg, nil, nil, nil, nil, nil, nil).WithImages(s.cat, maxUpload).WithAuth(anyToken{}, nil).Handler()
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.lengths = append(s.lengths, r.ContentLength)
		s.mu.Unlock()
		// The client's own token was recorded above; authentication is not what these tests check.
		r.Header.Set("Authorization", "Bearer any")
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.headers)
}

// runCLI runs one lwota command line the way main does, with env as the whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	switch args[0] {
	case "image":
		err = imageCmd(context.Background(), args[1:], &out, &errOut, getenv)
	case "key":
		err = keyCmd(context.Background(), args[1:], &out, &errOut, getenv)
	default:
		t.Fatalf("runCLI: %s is not a client command", args[0])
	}
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagePush(t *testing.T) {
	srv := newAPIServer(t, api.Config{}, 0)
	content := bytes.Repeat([]byte("\x7fELF firmware "), 30000) // 420 kB
	fw := writeFile(t, "fw.bin", content)
	sig := bytes.Repeat([]byte{0x5a}, 64)
	sigFile := writeFile(t, "fw.bin.sig", sig)
	sum := sha256.Sum256(content)

	stdout, stderr, err := runCLI(t, nil, "image", "push", "--server", srv.URL, "--token", "s3cret",
		"--file", fw, "--sig", sigFile, "--version", "1.4.2+build.7", "--model", "X1", "--manufacturer", "ACME",
		"--label", "channel=beta", "--label", "team=fw,core", "--target-label", "region=eu west",
		"--notes", "Fixes:\n- crash at 100% — finally", "--key-id", "key-1", "--sha256", strings.ToUpper(hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatalf("push: %v\nstderr: %s", err, stderr)
	}
	if stderr != "" {
		t.Fatalf("stderr is not a terminal, yet: %q", stderr)
	}
	if len(srv.cat.uploads) != 1 {
		t.Fatalf("%d uploads", len(srv.cat.uploads))
	}
	up := srv.cat.uploads[0]
	if !bytes.Equal(up.body, content) {
		t.Fatalf("server got %d bytes, want the file's %d", len(up.body), len(content))
	}
	want := firmware.UploadRequest{
		Name: "fw.bin", Version: "1.4.2+build.7",
		Target:       firmware.Selector{Manufacturer: "ACME", Model: "X1", Labels: map[string]string{"region": "eu west"}},
		ReleaseNotes: "Fixes:\n- crash at 100% — finally", Labels: map[string]string{"channel": "beta", "team": "fw,core"},
		Signature: sig, KeyID: "key-1", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
		Uploader: "token:test", // anyToken's name
	}
	if !reflect.DeepEqual(up.req, want) {
		t.Fatalf("upload request\n got %+v\nwant %+v", up.req, want)
	}
	h := srv.headers[0]
	if h.Get("Authorization") != "Bearer s3cret" || h.Get("Content-Type") != "application/octet-stream" || srv.lengths[0] != int64(len(content)) {
		t.Fatalf("headers %v, Content-Length %d", h, srv.lengths[0])
	}
	var img map[string]any
	if err := json.Unmarshal([]byte(stdout), &img); err != nil || img["id"] != "img-1" || img["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("stdout is not the image: %v\n%s", err, stdout)
	}
	if !strings.HasPrefix(stdout, "{\n  \"id\": \"img-1\",\n") || !strings.HasSuffix(stdout, "}\n") {
		t.Fatalf("stdout is not indented JSON:\n%s", stdout)
	}
}

// TestImagePushEnv: --server and --token come from LWOTA_SERVER and LWOTA_TOKEN, and nothing else
// comes from the environment.
func TestImagePushEnv(t *testing.T) {
	srv := newAPIServer(t, api.Config{}, 0)
	fw := writeFile(t, "app.bin", []byte("image"))
	env := map[string]string{"LWOTA_SERVER": srv.URL + "/", "LWOTA_TOKEN": "from-env", "LWOTA_VERSION": "9.9.9", "LWOTA_MODEL": "Z"}
	if _, _, err := runCLI(t, env, "image", "push", "--file", fw, "--version", "1.0.0", "--model", "X1"); err != nil {
		t.Fatal(err)
	}
	if got := srv.headers[0].Get("Authorization"); got != "Bearer from-env" {
		t.Fatalf("Authorization %q", got)
	}
	if r := srv.cat.uploads[0].req; r.Version != "1.0.0" || r.Target.Model != "X1" || r.Signature != nil {
		t.Fatalf("request %+v", r)
	}
	// Without flags the environment does not stand in for --file or --version.
	_, _, err := runCLI(t, env, "image", "push", "--model", "X1")
	if err == nil || err.Error() != "image push: --file is required" {
		t.Fatalf("err %v", err)
	}
	// The command line wins over the environment.
	_, _, err = runCLI(t, env, "image", "show", "img-1", "--server", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err %v, want a failure to reach the --server given", err)
	}
}

func TestImagePushErrors(t *testing.T) {
	content := []byte("firmware image bytes")
	tests := []struct {
		name      string
		maxUpload int64
		uploadErr error
		args      []string // after image push --server URL --file FILE
		want      string   // the whole error, or a part of it
		requests  int      // requests that must have reached the server
	}{
		{name: "bad signature", uploadErr: fmt.Errorf("%w: tried 2 keys", firmware.ErrBadSignature),
			args: []string{"--version", "1", "--model", "X"}, requests: 1,
			want: "server answered 422 bad_signature: signature not valid: tried 2 keys"},
		{name: "unsigned refused", uploadErr: firmware.ErrUnsigned,
			args: []string{"--version", "1", "--model", "X"}, requests: 1, want: "server answered 400 signature_required"},
		{name: "too large", maxUpload: 10, args: []string{"--version", "1", "--model", "X"}, requests: 1,
			want: "server answered 413 image_too_large: upload is larger than the 10 bytes this server accepts"},
		{name: "local sha256 mismatch", args: []string{"--version", "1", "--model", "X", "--sha256", strings.Repeat("0", 64)},
			want: "has SHA-256 " + hexSHA(content) + ", not the " + strings.Repeat("0", 64) + " of --sha256"},
		{name: "no version", args: []string{"--model", "X"}, want: "image push: --version is required"},
		{name: "no model", args: []string{"--version", "1"}, want: "image push: --model is required"},
		{name: "missing signature file", args: []string{"--version", "1", "--model", "X", "--sig", "/nonexistent/fw.sig"},
			want: "image push: signature: open /nonexistent/fw.sig: no such file or directory"},
		{name: "bad label", args: []string{"--version", "1", "--model", "X", "--label", "beta"}, want: `want key=value, not "beta"`},
		{name: "stray argument", args: []string{"--version", "1", "--model", "X", "extra"}, want: `image push: unexpected argument "extra"`},
		{name: "bad server URL", args: []string{"--version", "1", "--model", "X", "--server", "localhost:8080"},
			want: `--server "localhost:8080": want an http:// or https:// URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newAPIServer(t, api.Config{}, tt.maxUpload)
			srv.cat.uploadErr = tt.uploadErr
			fw := writeFile(t, "fw.bin", content)
			args := append([]string{"image", "push", "--server", srv.URL, "--file", fw}, tt.args...)
			stdout, _, err := runCLI(t, nil, args...)
			if err == nil {
				t.Fatalf("no error; stdout %s", stdout)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q", err, tt.want)
			}
			if stdout != "" {
				t.Fatalf("stdout %q on failure", stdout)
			}
			if srv.requests() != tt.requests {
				t.Fatalf("%d requests reached the server, want %d", srv.requests(), tt.requests)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, _, err := runCLI(t, nil, "image", "push", "--file", "/nonexistent/fw.bin", "--version", "1", "--model", "X")
		if err == nil || err.Error() != "image push: open /nonexistent/fw.bin: no such file or directory" {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not the API answering", func(t *testing.T) {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "upstream connect error", http.StatusBadGateway)
		}))
		defer proxy.Close()
		fw := writeFile(t, "fw.bin", content)
		_, _, err := runCLI(t, nil, "image", "push", "--server", proxy.URL, "--file", fw, "--version", "1", "--model", "X")
		if err == nil || !strings.HasSuffix(err.Error(), "server answered 502 Bad Gateway: upstream connect error") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		fw := writeFile(t, "fw.bin", content)
		_, _, err := runCLI(t, nil, "image", "push", "--server", url, "--file", fw, "--version", "1", "--model", "X")
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("err %v", err)
		}
	})
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestImageListAndShow(t *testing.T) {
	srv := newAPIServer(t, api.Config{DefaultPageSize: 2}, 0) // five images: three pages
	for i := 1; i <= 5; i++ {
		model := "X1"
		if i == 3 {
			model = "X2"
		}
		srv.cat.images = append(srv.cat.images, &firmware.Image{ID: fmt.Sprintf("img-%d", i), Version: "1.0.0",
			Target: firmware.Selector{Model: model}, Labels: map[string]string{"channel": "beta"}})
	}
	stdout, _, err := runCLI(t, nil, "image", "list", "--server", srv.URL, "--model", "X1", "--label", "channel=beta")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("stdout: %v\n%s", err, stdout)
	}
	var ids []string
	for _, img := range list {
		ids = append(ids, img.ID)
	}
	if !reflect.DeepEqual(ids, []string{"img-1", "img-2", "img-4", "img-5"}) {
		t.Fatalf("listed %v", ids)
	}
	if stdout, _, err := runCLI(t, nil, "image", "list", "--server", srv.URL, "--version", "0.0.1"); err != nil || stdout != "[]\n" {
		t.Fatalf("empty list: %q, %v", stdout, err)
	}

	// Flags may follow the id.
	stdout, _, err = runCLI(t, nil, "image", "show", "img-3", "--server", srv.URL)
	if err != nil || !strings.Contains(stdout, `"id": "img-3"`) || !strings.Contains(stdout, `"model": "X2"`) {
		t.Fatalf("show: %v\n%s", err, stdout)
	}
	_, _, err = runCLI(t, nil, "image", "show", "--server", srv.URL, "nope")
	if err == nil || err.Error() != "image show nope: server answered 404 not_found: image nope does not exist" {
		t.Fatalf("show unknown: %v", err)
	}
	if _, _, err := runCLI(t, nil, "image", "show", "--server", srv.URL); err == nil {
		t.Fatalf("show without id: no error")
	}
}

func TestImageCommandUsage(t *testing.T) {
	_, _, err := runCLI(t, nil, "image", "frobnicate")
	if err == nil || err.Error() != `image: unknown command "frobnicate"` || exitCode(err) != exitUsage {
		t.Fatalf("err %v", err)
	}
	stdout, _, err := runCLI(t, nil, "image", "help")
	if err != nil || !strings.Contains(stdout, "push") {
		t.Fatalf("help: %v %q", err, stdout)
	}
}

// TestPushProgress forces the bar that a terminal would get: it goes to stderr, never to stdout.
func TestPushProgress(t *testing.T) {
	srv := newAPIServer(t, api.Config{}, 0)
	fw := writeFile(t, "fw.bin", make([]byte, 256<<10))
	stdout, stderr, err := runCLI(t, nil, "image", "push", "--server", srv.URL, "--file", fw, "--version", "1", "--model", "X", "--progress", "always")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "uploading fw.bin") || !strings.Contains(stderr, "100%") || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("stderr %q", stderr)
	}
	if !strings.HasPrefix(stdout, "{") {
		t.Fatalf("stdout %q", stdout)
	}
	if _, _, err := runCLI(t, nil, "image", "push", "--file", fw, "--version", "1", "--model", "X", "--progress", "sometimes"); err == nil {
		t.Fatalf("--progress sometimes accepted")
	}
}

// anyToken authenticates every secret as an admin token: for the CLI tests, whose subject is the
// client, not authentication (TestTokensEndToEnd covers that against a real server).
type anyToken struct{}

func (anyToken) Authenticate(context.Context, string) (*apitoken.Token, error) {
	return &apitoken.Token{ID: "t1", Name: "test", Role: apitoken.RoleAdmin}, nil
}

func (anyToken) Create(context.Context, string, apitoken.Role, string) (*apitoken.Token, string, error) {
	return nil, "", errors.New("not in this test")
}

func (anyToken) List(context.Context) ([]*apitoken.Token, error) { return nil, nil }

func (anyToken) Revoke(context.Context, string) (*apitoken.Token, error) {
	return nil, apitoken.ErrNotFound
}
