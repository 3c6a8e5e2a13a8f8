package firmware_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

var readFile = os.ReadFile

// TestUploadMemoryBounded uploads a signed 50 MiB image and checks that the upload allocated far
// less than the image: the bytes stream through, they are never held.
func TestUploadMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB upload")
	}
	const size = 50 << 20
	for _, alg := range []signing.Algorithm{signing.ECDSAP256SHA256, signing.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			kp := newKeyPair(t, alg)
			e := newEnv(t, envOptions{})
			if _, err := e.cat.AddKey(context.Background(), "k", kp.public); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "big.bin")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			chunk := pseudoRandom(1<<20, 8)
			for i := range size >> 20 {
				chunk[0] = byte(i)
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			sig := kp.signFile(t, path)
			body, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			img, err := e.cat.Upload(context.Background(), firmware.UploadRequest{Name: "big", Version: "1", Signature: sig, Size: size},
				struct{ io.Reader }{body}) // no WriterTo: the pipeline's own copy path
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if img.Size != size {
				t.Errorf("image size %d, want %d", img.Size, size)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d MiB uploaded, %.1f MiB allocated", alg, size>>20, float64(allocated)/(1<<20))
			if allocated > size/8 {
				t.Errorf("the upload allocated %d bytes for a %d-byte image: it is being buffered", allocated, size)
			}
		})
	}
}
