package blobstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lwota/lwota/storage/blobstore"
)

// runSweep runs blobstore.Sweep until the test ends.
func runSweep(t *testing.T, s blobstore.Sweeper, cfg blobstore.SweepConfig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		blobstore.Sweep(ctx, s, cfg, testLogger(t))
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestSweepS3: a multipart upload an outage left open is aborted by the periodic sweep; one
// younger than the age threshold (an upload still running) is left alone.
func TestSweepS3(t *testing.T) {
	s, srv := openS3(t)
	ctx := testCtx(t, time.Minute)
	client := srv.Client()
	begin := func(key string) {
		t.Helper()
		k := "fw/" + key
		up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &k})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &srv.Bucket, Key: &k, UploadId: up.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20))}); err != nil {
			t.Fatal(err)
		}
	}
	begin("stale")
	// S3 keeps Initiated to the second: the fresh upload starts well after the stale one, and the
	// sweep's clock puts its cutoff between them, whatever the machine's load.
	time.Sleep(3 * time.Second)
	freshAt := time.Now()
	begin("fresh")
	const age = time.Hour
	cutoff := freshAt.Add(-1500 * time.Millisecond)
	runSweep(t, s, blobstore.SweepConfig{Interval: 50 * time.Millisecond, Age: age,
		Now: func() time.Time { return cutoff.Add(age) }})

	deadline := time.Now().Add(30 * time.Second)
	for {
		ups, err := s.Uploads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range ups {
			keys = append(keys, u.Key)
		}
		if len(keys) == 1 && keys[0] == "fresh" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads %q, want only the fresh one", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSweepDir: a partial upload file a killed process left is removed by the periodic sweep,
// not only at the next start; a file being written now stays.
func TestSweepDir(t *testing.T) {
	root := t.TempDir()
	d, err := blobstore.OpenDir(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "img"), 0o750); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "img", ".lwota-tmp-stale")
	fresh := filepath.Join(root, "img", ".lwota-tmp-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// Written to two hours ago: its writer died (the process was killed after OpenDir ran).
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	runSweep(t, d, blobstore.SweepConfig{Interval: 50 * time.Millisecond, Age: time.Hour})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(stale); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale partial upload is still there")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("the upload in progress was swept: %v", err)
	}
}

// TestCheck: Check passes on a working store and fails when the directory cannot be written.
func TestCheck(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images")
	d, err := blobstore.OpenDir(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	if err := d.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := d.List(ctx, ""); len(keys) != 0 {
		t.Fatalf("the probe shows in List: %q", keys)
	}
	// The directory is replaced by a file: every write fails (as on a full or read-only disk;
	// tests run as root, so permissions would not stop it).
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err == nil {
		t.Fatal("Check passed on a store that cannot be written")
	}

	s, _ := openS3(t)
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.List(ctx, ""); len(keys) != 0 {
		t.Fatalf("the probe shows in List: %q", keys)
	}
}
