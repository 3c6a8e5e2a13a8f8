// Package blobtest is the contract suite of firmware.Blobs that every blob store of
// storage/blobstore runs: ranges, atomic failure, renames, presigned URLs, bounded memory.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/storage/blobstore"
)

// Store is what the suite tests: the firmware.Blobs contract plus List. A store that is also a
// firmware.Presigner has its URLs tested too, and one that is an UploadLister (S3) is checked
// for multipart uploads left behind.
type Store interface {
	firmware.Blobs
	List(ctx context.Context, prefix string) ([]string, error)
}

// UploadLister lists multipart uploads in progress (blobstore.S3).
type UploadLister interface {
	Uploads(ctx context.Context) ([]blobstore.Upload, error)
}

// LargeSize is the size of the suite's large object. Stores must upload it holding less than
// half of it in memory.
const LargeSize = 32 << 20

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"PutOpen", testPutOpen},
		{"Ranges", testRanges},
		{"Empty", testEmpty},
		{"OpenMissing", testOpenMissing},
		{"Overwrite", testOverwrite},
		{"Rename", testRename},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"List", testList},
		{"PutFailsMidStream", testPutFails},
		{"PutCanceled", testPutCanceled},
		{"ConcurrentPuts", testConcurrentPuts},
		{"LargeObject", testLarge},
		{"Presign", testPresign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, s Store, key string, data []byte) {
	t.Helper()
	n, err := s.Put(ctxFor(t), key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%q) = %d bytes, want %d", key, n, len(data))
	}
}

func read(t *testing.T, s Store, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Open(ctxFor(t), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): read: %v", key, offset, length, err)
	}
	return b
}

func exists(t *testing.T, s Store, key string) bool {
	t.Helper()
	ok, err := s.Exists(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Exists(%q): %v", key, err)
	}
	return ok
}

func list(t *testing.T, s Store, prefix string) []string {
	t.Helper()
	keys, err := s.List(ctxFor(t), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

// checkGone checks that key holds nothing and that no multipart upload is left behind.
func checkGone(t *testing.T, s Store, key string) {
	t.Helper()
	if exists(t, s, key) {
		t.Errorf("Exists(%q) = true after a failed Put", key)
	}
	if keys := list(t, s, ""); slices.Contains(keys, key) {
		t.Errorf("List = %q, contains %q after a failed Put", keys, key)
	}
	checkNoUploads(t, s)
}

func checkNoUploads(t *testing.T, s Store) {
	t.Helper()
	ul, ok := s.(UploadLister)
	if !ok {
		return
	}
	ups, err := ul.Uploads(ctxFor(t))
	if err != nil {
		t.Fatalf("Uploads: %v", err)
	}
	if len(ups) != 0 {
		t.Errorf("multipart uploads left behind: %+v", ups)
	}
}

// pattern returns n bytes that differ from one part to the next, so that a reordered or
// repeated part shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(&patternReader{n: int64(n)}, b)
	return b
}

// patternReader yields n pattern bytes without holding them.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		x := uint64(r.off+int64(i)) * 0x9E3779B97F4A7C15
		p[i] = byte(x >> 56)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func testPutOpen(t *testing.T, s Store) {
	data := pattern(100_000)
	put(t, s, "images/abc", data)
	if got := read(t, s, "images/abc", 0, -1); !bytes.Equal(got, data) {
		t.Errorf("Open(0, -1) = %d bytes, not what was put", len(got))
	}
	if !exists(t, s, "images/abc") {
		t.Error("Exists = false after Put")
	}
	if exists(t, s, "images") {
		t.Error(`Exists("images") = true: a key's parent is no blob`)
	}
}

func testRanges(t *testing.T, s Store) {
	data := pattern(1000)
	put(t, s, "r", data)
	size := int64(len(data))
	for _, tc := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, data},
		{"first byte", 0, 1, data[:1]},
		{"middle", 300, 200, data[300:500]},
		{"last byte", size - 1, 1, data[size-1:]},
		{"to the end", 990, -1, data[990:]},
		{"past the end", 995, 100, data[995:]},
		{"exactly the size", 0, size, data},
		{"zero length", 10, 0, nil},
		{"offset at end", size, 10, nil},
		{"offset past end", size + 10, 5, nil},
		{"offset past end, to the end", size + 10, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := read(t, s, "r", tc.offset, tc.length); !bytes.Equal(got, tc.want) {
				t.Errorf("Open(%d, %d) = %d bytes, want %d", tc.offset, tc.length, len(got), len(tc.want))
			}
		})
	}
	if _, err := s.Open(ctxFor(t), "r", -1, 1); err == nil {
		t.Error("Open with a negative offset: no error")
	}
}

func testEmpty(t *testing.T, s Store) {
	put(t, s, "empty", nil)
	if !exists(t, s, "empty") {
		t.Error("empty blob: Exists = false")
	}
	if got := read(t, s, "empty", 0, -1); len(got) != 0 {
		t.Errorf("empty blob: read %d bytes", len(got))
	}
	if got := read(t, s, "empty", 0, 10); len(got) != 0 {
		t.Errorf("empty blob, range: read %d bytes", len(got))
	}
}

func testOpenMissing(t *testing.T, s Store) {
	for _, tc := range []struct{ offset, length int64 }{{0, -1}, {5, 10}, {0, 0}} {
		rc, err := s.Open(ctxFor(t), "missing", tc.offset, tc.length)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Open(missing, %d, %d) = %v, want ErrNotFound", tc.offset, tc.length, err)
		}
	}
	if exists(t, s, "missing") {
		t.Error("Exists(missing) = true")
	}
}

func testOverwrite(t *testing.T, s Store) {
	put(t, s, "k", []byte("first version, longer"))
	put(t, s, "k", []byte("second"))
	if got := read(t, s, "k", 0, -1); string(got) != "second" {
		t.Errorf("after overwrite: %q", got)
	}
}

func testRename(t *testing.T, s Store) {
	ctx := ctxFor(t)
	t.Run("to a new key", func(t *testing.T) {
		put(t, s, "upload/1", []byte("one"))
		if err := s.Rename(ctx, "upload/1", "images/one"); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if exists(t, s, "upload/1") {
			t.Error("source still exists")
		}
		if got := read(t, s, "images/one", 0, -1); string(got) != "one" {
			t.Errorf("target = %q", got)
		}
	})
	t.Run("onto an existing key", func(t *testing.T) {
		put(t, s, "upload/2", []byte("new bytes"))
		put(t, s, "images/two", []byte("old"))
		if err := s.Rename(ctx, "upload/2", "images/two"); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if got := read(t, s, "images/two", 0, -1); string(got) != "new bytes" {
			t.Errorf("target = %q", got)
		}
		if exists(t, s, "upload/2") {
			t.Error("source still exists")
		}
	})
	t.Run("into a new directory", func(t *testing.T) {
		put(t, s, "flat", []byte("x"))
		if err := s.Rename(ctx, "flat", "deep/er/still"); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if got := read(t, s, "deep/er/still", 0, -1); string(got) != "x" {
			t.Errorf("target = %q", got)
		}
	})
	t.Run("onto itself", func(t *testing.T) {
		put(t, s, "same", []byte("same"))
		if err := s.Rename(ctx, "same", "same"); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if got := read(t, s, "same", 0, -1); string(got) != "same" {
			t.Errorf("after renaming onto itself: %q", got)
		}
	})
	t.Run("missing source", func(t *testing.T) {
		put(t, s, "target", []byte("kept"))
		if err := s.Rename(ctx, "nothing", "target"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Rename(missing) = %v, want ErrNotFound", err)
		}
		if got := read(t, s, "target", 0, -1); string(got) != "kept" {
			t.Errorf("target after a failed rename = %q", got)
		}
		if err := s.Rename(ctx, "nothing", "nothing"); !errors.Is(err, blobstore.ErrNotFound) {
			t.Errorf("Rename(missing onto itself) = %v, want ErrNotFound", err)
		}
	})
}

func testDelete(t *testing.T, s Store) {
	ctx := ctxFor(t)
	put(t, s, "d/1", []byte("x"))
	put(t, s, "d/2", []byte("y"))
	for i := range 2 {
		if err := s.Delete(ctx, "d/1"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if exists(t, s, "d/1") {
		t.Error("deleted key exists")
	}
	if !exists(t, s, "d/2") {
		t.Error("its neighbour is gone")
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Errorf("Delete(never existed) = %v", err)
	}
	if _, err := s.Open(ctx, "d/1", 0, -1); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Open(deleted) = %v, want ErrNotFound", err)
	}
}

// InvalidKeys are refused by every method of every store.
var InvalidKeys = []string{"", ".", "..", "../x", "a/../../x", "a/../b", "/etc/passwd", "a//b", "a/", "./a",
	"a/./b", "a\x00b", `a\b`, ".lwota-tmp-1", "a/.lwota-x"}

func testInvalidKeys(t *testing.T, s Store) {
	ctx := ctxFor(t)
	put(t, s, "valid", []byte("v"))
	for _, key := range InvalidKeys {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if _, err := s.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Put = %v, want ErrInvalidKey", err)
			}
			if rc, err := s.Open(ctx, key, 0, -1); !errors.Is(err, blobstore.ErrInvalidKey) {
				if err == nil {
					rc.Close()
				}
				t.Errorf("Open = %v, want ErrInvalidKey", err)
			}
			if _, err := s.Exists(ctx, key); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Exists = %v, want ErrInvalidKey", err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Delete = %v, want ErrInvalidKey", err)
			}
			if err := s.Rename(ctx, "valid", key); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Rename(valid, key) = %v, want ErrInvalidKey", err)
			}
			if err := s.Rename(ctx, key, "valid2"); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Rename(key, valid2) = %v, want ErrInvalidKey", err)
			}
			if p, ok := s.(firmware.Presigner); ok {
				if _, err := p.PresignGet(ctx, key, time.Minute); !errors.Is(err, blobstore.ErrInvalidKey) {
					t.Errorf("PresignGet = %v, want ErrInvalidKey", err)
				}
			}
		})
	}
	if keys := list(t, s, ""); !slices.Equal(keys, []string{"valid"}) {
		t.Errorf("List after invalid keys = %q, want only %q", keys, "valid")
	}
}

func testList(t *testing.T, s Store) {
	for _, k := range []string{"b/2", "a/1", "a/2", "a.c", "a/sub/3", "ab"} {
		put(t, s, k, []byte(k))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a.c", "a/1", "a/2", "a/sub/3", "ab", "b/2"}},
		{"a/", []string{"a/1", "a/2", "a/sub/3"}},
		{"a", []string{"a.c", "a/1", "a/2", "a/sub/3", "ab"}},
		{"a/s", []string{"a/sub/3"}},
		{"a/sub/", []string{"a/sub/3"}},
		{"b/2", []string{"b/2"}},
		{"c", nil},
		{"zz/yy/", nil},
	} {
		if got := list(t, s, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

// failingReader yields r's bytes, then err once after bytes have been read.
type failingReader struct {
	r     io.Reader
	after int64
	err   error
	n     int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, f.err
	}
	p = p[:min(int64(len(p)), f.after-f.n)]
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// failAfter are the sizes where sources fail: within the first part and past a few parts
// (with parts of 5 MiB).
var failAfter = []struct {
	name string
	n    int64
}{{"at once", 0}, {"small", 1000}, {"after several parts", 12 << 20}}

func testPutFails(t *testing.T, s Store) {
	errSource := errors.New("source broke")
	for _, tc := range failAfter {
		t.Run(tc.name, func(t *testing.T) {
			r := &failingReader{r: &patternReader{n: 1 << 40}, after: tc.n, err: errSource}
			n, err := s.Put(ctxFor(t), "fails", r)
			if !errors.Is(err, errSource) {
				t.Fatalf("Put = %d, %v; want the source's error", n, err)
			}
			checkGone(t, s, "fails")

			// A failed Put leaves an earlier blob under the key as it was.
			put(t, s, "kept", []byte("earlier"))
			r = &failingReader{r: &patternReader{n: 1 << 40}, after: tc.n, err: errSource}
			if _, err := s.Put(ctxFor(t), "kept", r); !errors.Is(err, errSource) {
				t.Fatalf("Put over a blob = %v; want the source's error", err)
			}
			if got := read(t, s, "kept", 0, -1); string(got) != "earlier" {
				t.Errorf("blob after a failed overwrite = %d bytes, want the earlier one", len(got))
			}
			checkNoUploads(t, s)
		})
	}
}

// cancelingReader cancels a context once after bytes have been read, and goes on yielding.
type cancelingReader struct {
	r      io.Reader
	after  int64
	cancel func()
	n      int64
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func testPutCanceled(t *testing.T, s Store) {
	for _, tc := range failAfter {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctxFor(t))
			r := &cancelingReader{r: &patternReader{n: 40 << 20}, after: tc.n, cancel: cancel}
			n, err := s.Put(ctx, "canceled", r)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put = %d, %v; want context.Canceled", n, err)
			}
			checkGone(t, s, "canceled")
		})
	}
}

func testConcurrentPuts(t *testing.T, s Store) {
	const writers = 4
	blobs := make([][]byte, writers)
	for i := range blobs {
		blobs[i] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i)
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if _, err := s.Put(ctxFor(t), "contended", bytes.NewReader(blobs[i])); err != nil {
				t.Errorf("Put #%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got := read(t, s, "contended", 0, -1)
	if !slices.ContainsFunc(blobs, func(b []byte) bool { return bytes.Equal(b, got) }) {
		t.Errorf("after concurrent Puts the blob is none of them whole (%d bytes)", len(got))
	}
}

func testLarge(t *testing.T, s Store) {
	ctx := ctxFor(t)
	peak := measureHeap(func() {
		n, err := s.Put(ctx, "large", &patternReader{n: LargeSize})
		if err != nil || n != LargeSize {
			t.Fatalf("Put = %d, %v; want %d", n, err, LargeSize)
		}
	})
	t.Logf("put %d MiB with a live heap growth of at most %.1f MiB", LargeSize>>20, float64(peak)/(1<<20))
	if peak > LargeSize/2 {
		t.Errorf("live heap grew by %d bytes during a Put of %d: the store buffers the object", peak, LargeSize)
	}
	rc, err := s.Open(ctx, "large", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := sameStream(rc, &patternReader{n: LargeSize}); err != nil {
		t.Errorf("read back: %v", err)
	}
	tail := read(t, s, "large", LargeSize-10, -1)
	if want := pattern(LargeSize)[LargeSize-10:]; !bytes.Equal(tail, want) {
		t.Errorf("last 10 bytes = %x, want %x", tail, want)
	}
	checkNoUploads(t, s)
}

// measureHeap runs fn and returns roughly the highest growth of the live heap meanwhile,
// sampled after forced collections.
func measureHeap(fn func()) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	sample := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base {
			peak = max(peak, ms.HeapAlloc-base)
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	func() {
		defer close(done)
		fn()
	}()
	<-stopped
	return peak
}

func sameStream(got, want io.Reader) error {
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		n, errA := io.ReadFull(got, a)
		m, errB := io.ReadFull(want, b)
		if n != m || !bytes.Equal(a[:n], b[:m]) {
			return fmt.Errorf("differs within bytes %d to %d (read %d, want %d)", off, off+int64(max(n, m)), n, m)
		}
		off += int64(n)
		if errA != nil || errB != nil {
			if (errA == io.EOF || errA == io.ErrUnexpectedEOF) && errA == errB {
				return nil
			}
			return fmt.Errorf("at byte %d: %v, want %v", off, errA, errB)
		}
	}
}

func testPresign(t *testing.T, s Store) {
	p, ok := s.(firmware.Presigner)
	if !ok {
		t.Skip("the store hands out no presigned URLs")
	}
	ctx := ctxFor(t)
	data := pattern(50_000)
	put(t, s, "presign/a b+c", data)
	put(t, s, "presign/other", []byte("other"))
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(t *testing.T, u string, header ...string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		return resp.StatusCode, b
	}
	presign := func(t *testing.T, key string, ttl time.Duration) string {
		t.Helper()
		u, err := p.PresignGet(ctx, key, ttl)
		if err != nil {
			t.Fatalf("PresignGet(%q): %v", key, err)
		}
		return u
	}

	good := presign(t, "presign/a b+c", 10*time.Minute)
	t.Run("GET", func(t *testing.T) {
		if code, body := get(t, good); code != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("GET = %d, %d bytes; want 200 and the blob", code, len(body))
		}
	})
	t.Run("Range", func(t *testing.T) {
		if code, body := get(t, good, "Range", "bytes=100-199"); code != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
			t.Errorf("GET with Range = %d, %d bytes; want 206 and bytes 100 to 199", code, len(body))
		}
	})
	t.Run("missing blob", func(t *testing.T) {
		if code, _ := get(t, presign(t, "presign/missing", time.Minute)); code != http.StatusNotFound {
			t.Errorf("GET of a missing blob = %d, want 404", code)
		}
	})
	t.Run("tampered signature", func(t *testing.T) {
		if code, _ := get(t, tamperSignature(t, good)); code != http.StatusForbidden {
			t.Errorf("GET with a tampered signature = %d, want 403", code)
		}
	})
	t.Run("other key", func(t *testing.T) {
		u, err := url.Parse(good)
		if err != nil {
			t.Fatal(err)
		}
		esc := u.EscapedPath()
		i := strings.LastIndex(esc, "/")
		u.RawPath = esc[:i] + "/other"
		u.Path, _ = url.PathUnescape(u.RawPath)
		if code, _ := get(t, u.String()); code != http.StatusForbidden {
			t.Errorf("GET of another key with a's signature = %d, want 403", code)
		}
	})
	t.Run("expired", func(t *testing.T) {
		// S3 truncates the signing time to the second: a ttl of 3s leaves at least 2s.
		short := presign(t, "presign/other", 3*time.Second)
		if code, body := get(t, short); code != http.StatusOK || string(body) != "other" {
			t.Fatalf("GET before expiry = %d %q, want 200", code, body)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			time.Sleep(250 * time.Millisecond)
			code, body := get(t, short)
			if code == http.StatusForbidden {
				return
			}
			if code != http.StatusOK || string(body) != "other" {
				t.Fatalf("GET before expiry = %d %q", code, body)
			}
			if time.Now().After(deadline) {
				t.Fatal("URL with a ttl of 3s still served after 15s")
			}
		}
	})
	t.Run("bad ttl", func(t *testing.T) {
		if _, err := p.PresignGet(ctx, "presign/other", 0); err == nil {
			t.Error("PresignGet with ttl 0: no error")
		}
	})
}

// tamperSignature changes the last hex digit of the URL's signature (sig or X-Amz-Signature).
func tamperSignature(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for _, name := range []string{"sig", "X-Amz-Signature"} {
		if sig := q.Get(name); sig != "" {
			last := sig[len(sig)-1]
			flip := byte('0')
			if last == '0' {
				flip = '1'
			}
			q.Set(name, sig[:len(sig)-1]+string(flip))
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	t.Fatalf("no signature in %s", raw)
	return ""
}
