package blobstore_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/blobtest"
	"github.com/lwota/lwota/storage/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// openDir returns a Dir in a new directory whose presigned URLs are served by a test server.
func openDir(t *testing.T) *blobstore.Dir {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	signer, err := blobstore.NewURLSigner(srv.URL, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := blobstore.OpenDir(t.TempDir(), signer)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/blobs/", d.Handler())
	return d
}

// s3Config is the configuration the tests use against srv: small parts, two at once.
func s3Config(srv s3test.Server) blobstore.S3Config {
	return blobstore.S3Config{
		Endpoint:    srv.Endpoint,
		Region:      srv.Region,
		Bucket:      srv.Bucket,
		Prefix:      "fw",
		PathStyle:   true,
		PartSize:    blobstore.MinPartSize,
		Concurrency: 2,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openS3 returns an S3 store on a new bucket of the test server, with the server's credentials
// in the environment (the SDK's default chain reads them there).
func openS3(t *testing.T) (*blobstore.S3, s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	srv.Setenv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := blobstore.OpenS3(ctx, s3Config(srv), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, srv
}

func TestDir(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Store { return openDir(t) })
}

func TestS3(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		s, _ := openS3(t)
		return s
	})
}
