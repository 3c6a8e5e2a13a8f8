package blobstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/lwota/lwota/storage/blobstore"
)

// A directory store whose presigned URLs lwota's HTTP server serves at /blobs/.
func ExampleDir() {
	dir, _ := os.MkdirTemp("", "blobs-")
	defer os.RemoveAll(dir)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()

	signer, err := blobstore.NewURLSigner(srv.URL, []byte("a secret of 16 bytes or more"), nil)
	if err != nil {
		panic(err)
	}
	blobs, err := blobstore.OpenDir(dir, signer)
	if err != nil {
		panic(err)
	}
	mux.Handle("/blobs/", blobs.Handler())

	ctx := context.Background()
	n, err := blobs.Put(ctx, "images/fw-1.2.0.bin", strings.NewReader("firmware image bytes"))
	fmt.Println(n, err)

	rc, _ := blobs.Open(ctx, "images/fw-1.2.0.bin", 9, 5) // 5 bytes from offset 9
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Printf("%q\n", b)

	url, _ := blobs.PresignGet(ctx, "images/fw-1.2.0.bin", 10*time.Minute)
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	resp, _ = http.Get(strings.Replace(url, "sig=", "sig=0", 1))
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// 20 <nil>
	// "image"
	// 200 firmware image bytes
	// 403
}
