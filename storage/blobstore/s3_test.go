package blobstore_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/s3test"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The server is real: it refuses a wrong secret.
func TestS3WrongSecret(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey+"x")
	_, err := blobstore.OpenS3(testCtx(t, 30*time.Second), s3Config(srv), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("OpenS3 with a wrong secret = %v, want access denied", err)
	}
	t.Log(err)
}

func TestS3CreateBucket(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	cfg := s3Config(srv)
	cfg.Bucket = srv.Bucket + "-new"
	t.Cleanup(func() { os.RemoveAll(filepath.Join(srv.Dir, cfg.Bucket)) })
	ctx := testCtx(t, 30*time.Second)

	_, err := blobstore.OpenS3(ctx, cfg, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "CreateBucket") {
		t.Fatalf("OpenS3 of a missing bucket = %v, want an error saying it does not exist and naming CreateBucket", err)
	}
	if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.Bucket}); err == nil {
		t.Fatal("the bucket exists although CreateBucket was not set")
	}

	cfg.CreateBucket = true
	for i := range 2 { // the second time the bucket exists
		s, err := blobstore.OpenS3(ctx, cfg, testLogger(t))
		if err != nil {
			t.Fatalf("OpenS3 #%d with CreateBucket: %v", i+1, err)
		}
		if _, err := s.Put(ctx, "k", strings.NewReader("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatalf("bucket not created: %v", err)
	}
}

func TestOpenS3ConfigErrors(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	ctx := testCtx(t, 30*time.Second)
	for _, tc := range []struct {
		name   string
		modify func(*blobstore.S3Config)
		env    []string
		want   string
	}{
		{"no bucket", func(c *blobstore.S3Config) { c.Bucket = "" }, nil, "no bucket"},
		{"small parts", func(c *blobstore.S3Config) { c.PartSize = 1 << 20 }, nil, "part size"},
		{"bad endpoint", func(c *blobstore.S3Config) { c.Endpoint = "127.0.0.1:9000" }, nil, "endpoint"},
		{"bad prefix", func(c *blobstore.S3Config) { c.Prefix = "a/../b" }, nil, "prefix"},
		{"negative concurrency", func(c *blobstore.S3Config) { c.Concurrency = -1 }, nil, "concurrency"},
		{"no region for AWS", func(c *blobstore.S3Config) { c.Endpoint, c.Region = "", "" }, []string{"AWS_REGION", "AWS_ENDPOINT_URL_S3"}, "no region"},
		{"no credentials", func(c *blobstore.S3Config) {}, []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, "no credentials"},
		{"server down", func(c *blobstore.S3Config) { c.Endpoint = "http://127.0.0.1:1" }, nil, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range tc.env {
				t.Setenv(k, "")
			}
			cfg := s3Config(srv)
			tc.modify(&cfg)
			_, err := blobstore.OpenS3(ctx, cfg, testLogger(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenS3 = %v, want an error about %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// Keys live under the Prefix; stores with different prefixes share a bucket without seeing
// each other's keys.
func TestS3Prefix(t *testing.T) {
	s1, srv := openS3(t)
	cfg := s3Config(srv)
	cfg.Prefix = "/other/tenant/"
	ctx := testCtx(t, 30*time.Second)
	s2, err := blobstore.OpenS3(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*blobstore.S3{s1, s2} {
		if _, err := s.Put(ctx, "a/key", strings.NewReader("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s1.Put(ctx, "only-in-1", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s2.List(ctx, ""); !slices.Equal(keys, []string{"a/key"}) {
		t.Errorf("s2.List = %q", keys)
	}
	out, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &srv.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	var raw []string
	for _, o := range out.Contents {
		raw = append(raw, aws.ToString(o.Key))
	}
	if want := []string{"fw/a/key", "fw/only-in-1", "other/tenant/a/key"}; !slices.Equal(raw, want) {
		t.Errorf("objects in the bucket = %q, want %q", raw, want)
	}
}

// A Put of more than one part is a multipart upload: its ETag says how many parts.
func TestS3Multipart(t *testing.T) {
	s, srv := openS3(t)
	ctx := testCtx(t, 30*time.Second)
	if _, err := s.Put(ctx, "mp", io.LimitReader(zeros{}, 2*blobstore.MinPartSize+1)); err != nil {
		t.Fatal(err)
	}
	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: aws.String("fw/mp")})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
		t.Errorf("ETag %s: want a multipart upload of 3 parts", etag)
	}
	if aws.ToInt64(head.ContentLength) != 2*blobstore.MinPartSize+1 {
		t.Errorf("size %d", aws.ToInt64(head.ContentLength))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// hookReader calls hook once when more than at bytes have been read.
type hookReader struct {
	r    io.Reader
	at   int64
	hook func()
	n    int64
	once sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	if h.n > h.at {
		h.once.Do(h.hook)
	}
	return n, err
}

// Killing the server in the middle of a multipart Put gives an error, not a hang; after a
// restart on the same directory the store works again, and the upload the failed abort left
// behind can be cleaned up.
func TestS3ServerKilledMidPut(t *testing.T) {
	s, srv := openS3(t)
	ctx := testCtx(t, 50*time.Second)
	if _, err := s.Put(ctx, "before", strings.NewReader("survives")); err != nil {
		t.Fatal(err)
	}
	r := &hookReader{r: io.LimitReader(zeros{}, 40<<20), at: blobstore.MinPartSize + 1<<20, hook: srv.Stop}
	start := time.Now()
	_, err := s.Put(ctx, "killed", r)
	if err == nil {
		t.Fatal("Put succeeded although the server was killed")
	}
	if ctx.Err() != nil {
		t.Fatalf("Put hung until the test's deadline: %v", err)
	}
	t.Logf("Put failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	again := s3test.Start(t)
	if again.Endpoint != srv.Endpoint {
		t.Fatalf("restarted on %s, was %s", again.Endpoint, srv.Endpoint)
	}
	if got := mustRead(t, s, "before"); got != "survives" {
		t.Errorf("after the restart: %q", got)
	}
	if ok, err := s.Exists(ctx, "killed"); err != nil || ok {
		t.Errorf("Exists(killed) = %v, %v", ok, err)
	}
	data := bytes.Repeat([]byte("after the restart "), 600_000) // 10.3 MB: multipart again
	if n, err := s.Put(ctx, "after", bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("Put after the restart = %d, %v", n, err)
	}
	if got := mustRead(t, s, "after"); got != string(data) {
		t.Errorf("after the restart: read %d bytes, want %d", len(got), len(data))
	}

	ups, err := s.Uploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uploads left behind: %+v", ups)
	if len(ups) > 1 || len(ups) == 1 && ups[0].Key != "killed" {
		t.Errorf("uploads = %+v, want at most the killed one", ups)
	}
	if n, err := s.AbortUploads(ctx, time.Now().Add(time.Minute)); err != nil || n != len(ups) {
		t.Errorf("AbortUploads = %d, %v; want %d", n, err, len(ups))
	}
	if ups, err := s.Uploads(ctx); err != nil || len(ups) != 0 {
		t.Errorf("uploads after AbortUploads = %+v, %v", ups, err)
	}
}

func mustRead(t *testing.T, s *blobstore.S3, key string) string {
	t.Helper()
	rc, err := s.Open(testCtx(t, 30*time.Second), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
