package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/storage/s3test"
)

// openssl runs the real openssl CLI, as a CI pipeline signing images would.
func openssl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(sysdeps.Require(t, "openssl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v: %s", args, err, out)
	}
}

// writeImage writes n pseudo-random bytes (fast and deterministic per seed).
func writeImage(t *testing.T, path string, n int, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	if _, err := io.CopyN(f, rng, int64(n)); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cli runs an lwota subcommand in-process and returns stdout, stderr and its error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	if len(args) >= 2 && !slices.Contains(args, "--token") {
		switch args[0] {
		case "image", "key", "token", "update", "campaign": // API clients: as the test services' admin
			args = append(append(slices.Clone(args[:2]), "--token", testAdminToken), args[2:]...)
		}
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func bucketKeys(t *testing.T, srv s3test.Server) []string {
	t.Helper()
	out, err := srv.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	slices.Sort(keys)
	return keys
}

func imageRows(t *testing.T, ts *testService) []string {
	t.Helper()
	imgs, err := ts.svc.store.ListImages(context.Background(), firmware.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, img := range imgs {
		ids = append(ids, img.ID+" "+img.SHA256)
	}
	return ids
}

func pendingUploads(t *testing.T, srv s3test.Server) int {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// heapPeak samples the live heap until stop is called and returns the highest growth over base.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
					peak.Store(m.HeapAlloc - base)
				}
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// rawUpload sends the raw-body upload by hand, so a test can lie about the length or digest.
func rawUpload(t *testing.T, ts *testService, headers map[string]string, body io.Reader, contentLength int64) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.base+"/api/v1/images", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestImageUploadsToS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	ts := startService(t, dir, "", "--s3-bucket", srv.Bucket, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region, "--s3-path-style")

	// CI's signing key, made and used with openssl.
	key, pub := filepath.Join(dir, "ci.pem"), filepath.Join(dir, "ci.pub.pem")
	openssl(t, "genpkey", "-algorithm", "ed25519", "-out", key)
	openssl(t, "pkey", "-in", key, "-pubout", "-out", pub)
	if _, stderr, err := cli(t, "key", "add", "--server", ts.base, "--name", "ci", "--public-key", pub); err != nil {
		t.Fatalf("key add: %v: %s", err, stderr)
	}

	// A 50 MiB signed image goes up through the CLI; the server streams it.
	fw, sig := filepath.Join(dir, "fw.bin"), filepath.Join(dir, "fw.bin.sig")
	writeImage(t, fw, 50<<20, 1)
	openssl(t, "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", fw, "-out", sig)
	want := fileSHA(t, fw)
	stopSampling := heapPeak()
	pushStart := time.Now()
	out, stderr, err := cli(t, "image", "push", "--server", ts.base, "--file", fw, "--sig", sig, "--version", "1.4.2", "--model", "X", "--label", "channel=stable")
	pushTook := time.Since(pushStart)
	peak := stopSampling()
	if err != nil {
		t.Fatalf("image push: %v: %s", err, stderr)
	}
	var img firmware.Image
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("push printed %q: %v", out, err)
	}
	if img.SHA256 != want || img.Size != 50<<20 || img.Version != "1.4.2" || img.SignatureAlg != "ed25519" || img.Unsigned {
		t.Fatalf("image = %+v", img)
	}
	// The heap of the whole process (server and CLI together) stays well below the image size.
	t.Logf("heap peak growth during a 50 MiB upload: %.1f MiB", float64(peak)/(1<<20))
	if peak > 25<<20 {
		t.Fatalf("heap grew by %d MiB during a 50 MiB upload: the upload is buffered", peak>>20)
	}
	// The baseline for the push's time: the same bytes put straight into the same S3 server.
	f, err := os.Open(fw)
	if err != nil {
		t.Fatal(err)
	}
	putStart := time.Now()
	_, err = srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("baseline"), Body: f, ContentLength: aws.Int64(50 << 20)})
	putTook := time.Since(putStart)
	f.Close()
	if err != nil {
		t.Fatalf("baseline put: %v", err)
	}
	if _, err := srv.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("baseline")}); err != nil {
		t.Fatal(err)
	}
	t.Logf("50 MiB push (hash, HTTP, verify, S3 multipart, rename) took %s: %.2fx a direct S3 PutObject of the same file (%s)", pushTook.Round(time.Millisecond), pushTook.Seconds()/putTook.Seconds(), putTook.Round(time.Millisecond))
	obj, err := srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("images/sha256/" + want)})
	if err != nil {
		t.Fatalf("object not in S3 under its content address: %v", err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, obj.Body)
	obj.Body.Close()
	if got := hex.EncodeToString(h.Sum(nil)); got != want || n != 50<<20 {
		t.Fatalf("S3 object sha256 %s (%d bytes), want %s", got, n, want)
	}

	// A revoked key.
	key2, pub2 := filepath.Join(dir, "old.pem"), filepath.Join(dir, "old.pub.pem")
	openssl(t, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key2)
	openssl(t, "pkey", "-in", key2, "-pubout", "-out", pub2)
	out, stderr, err = cli(t, "key", "add", "--server", ts.base, "--name", "old", "--public-key", pub2)
	if err != nil {
		t.Fatalf("key add: %v: %s", err, stderr)
	}
	var oldKey struct{ ID string }
	_ = json.Unmarshal([]byte(out), &oldKey)
	if _, stderr, err := cli(t, "key", "revoke", "--server", ts.base, oldKey.ID); err != nil {
		t.Fatalf("key revoke: %v: %s", err, stderr)
	}

	small := filepath.Join(dir, "small.bin")
	writeImage(t, small, 300<<10, 2)
	smallSig, revokedSig, wrongSig := small+".sig", small+".revoked.sig", small+".wrong.sig"
	openssl(t, "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", small, "-out", smallSig)
	openssl(t, "dgst", "-sha256", "-sign", key2, "-out", revokedSig, small)
	openssl(t, "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", fw, "-out", wrongSig) // signs other bytes
	smallBytes, _ := os.ReadFile(small)
	b64 := func(path string) string {
		b, _ := os.ReadFile(path)
		return base64.StdEncoding.EncodeToString(b)
	}

	keysBefore, rowsBefore := bucketKeys(t, srv), imageRows(t, ts)
	if len(keysBefore) != 1 || len(rowsBefore) != 1 {
		t.Fatalf("after one upload: bucket %v, rows %v", keysBefore, rowsBefore)
	}
	refusals := []struct {
		name     string
		headers  map[string]string
		body     io.Reader
		length   int64
		wantCode int
	}{
		{"wrong signature", map[string]string{"X-Lwota-Signature": b64(wrongSig)}, bytes.NewReader(smallBytes), int64(len(smallBytes)), 422},
		{"revoked key", map[string]string{"X-Lwota-Signature": b64(revokedSig)}, bytes.NewReader(smallBytes), int64(len(smallBytes)), 422},
		{"hash mismatch", map[string]string{"X-Lwota-Signature": b64(smallSig), "X-Lwota-Sha256": strings.Repeat("ab", 32)}, bytes.NewReader(smallBytes), int64(len(smallBytes)), 422},
		{"no signature", nil, bytes.NewReader(smallBytes), int64(len(smallBytes)), 400},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"X-Lwota-Name": "fw", "X-Lwota-Version": "2.0.0", "X-Lwota-Model": "X"}
			for k, v := range tc.headers {
				h[k] = v
			}
			code, body := rawUpload(t, ts, h, tc.body, tc.length)
			if code != tc.wantCode || !strings.Contains(body, `"error"`) {
				t.Fatalf("answered %d %s, want %d with an error body", code, body, tc.wantCode)
			}
			if got := bucketKeys(t, srv); !slices.Equal(got, keysBefore) {
				t.Fatalf("bucket changed: %v, was %v", got, keysBefore)
			}
			if got := imageRows(t, ts); !slices.Equal(got, rowsBefore) {
				t.Fatalf("images table changed: %v, was %v", got, rowsBefore)
			}
			if n := pendingUploads(t, srv); n != 0 {
				t.Fatalf("%d multipart uploads left behind", n)
			}
		})
	}

	t.Run("truncated body", func(t *testing.T) {
		// A client that declares 6 MiB and hangs up after 3 MiB: an HTTP client would refuse to
		// send that, so the request is written on a raw connection.
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/v1/images HTTP/1.1\r\nHost: lwota\r\nAuthorization: Bearer "+testAdminToken+"\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"+
			"X-Lwota-Name: fw\r\nX-Lwota-Version: 3.0.0\r\nX-Lwota-Model: X\r\nX-Lwota-Signature: %s\r\n\r\n", 6<<20, b64(sig))
		chunk := make([]byte, 3<<20)
		_, _ = conn.Write(chunk)
		_ = conn.(*net.TCPConn).CloseWrite()
		resp, _ := io.ReadAll(conn)
		conn.Close()
		if len(resp) > 0 && !bytes.Contains(resp, []byte(" 400 ")) {
			t.Fatalf("truncated upload answered %q", firstLine(resp))
		}
		waitFor(t, "the refused upload to be cleaned up", 10*time.Second, func() bool {
			return slices.Equal(bucketKeys(t, srv), keysBefore) && pendingUploads(t, srv) == 0
		})
		if got := imageRows(t, ts); !slices.Equal(got, rowsBefore) {
			t.Fatalf("images table changed: %v", got)
		}
	})

	t.Run("S3 dies mid-upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		type answer struct {
			code int
			body string
		}
		done := make(chan answer, 1)
		go func() {
			code, body := rawUpload(t, ts, map[string]string{"X-Lwota-Name": "fw", "X-Lwota-Version": "4.0.0", "X-Lwota-Model": "X", "X-Lwota-Signature": b64(sig)}, pr, 50<<20)
			done <- answer{code, body}
		}()
		f, err := os.Open(fw)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := io.CopyN(pw, f, 12<<20); err != nil {
			t.Fatal(err)
		}
		srv.Stop() // a crash of the S3 server, mid-stream
		go func() { _, _ = io.Copy(pw, f); pw.Close() }()
		var a answer
		select {
		case a = <-done:
		case <-time.After(90 * time.Second):
			t.Fatal("upload did not end after S3 died")
		}
		if a.code < 500 || !strings.Contains(a.body, "storage_unavailable") {
			t.Fatalf("answered %d %s, want 5xx storage_unavailable", a.code, a.body)
		}
		if got := imageRows(t, ts); !slices.Equal(got, rowsBefore) {
			t.Fatalf("a row was left: %v", got)
		}
		// S3 comes back on the same port and data: the next upload works.
		s3test.Start(t)
		out, stderr, err := cli(t, "image", "push", "--server", ts.base, "--file", small, "--sig", smallSig, "--version", "1.4.3", "--model", "X")
		if err != nil {
			t.Fatalf("push after S3 returned: %v: %s %s", err, stderr, out)
		}
		if got := imageRows(t, ts); len(got) != 2 {
			t.Fatalf("rows after recovery: %v", got)
		}
	})
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}
