package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lwota/lwota/server/transport"
)

const imageSize = 256 << 10

// libcoap's command-line client (apt-get install libcoap3-bin). The test fails when the binary
// is missing: CI installs it.
func TestLibcoapPull(t *testing.T) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		t.Fatalf("coap-client-notls not found (apt-get install -y libcoap3-bin): %v", err)
	}
	f := startServer(t, Config{}, imageSize)
	for _, size := range []int{1024, 64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image.bin")
			uri := fmt.Sprintf("coap://%s%s%s", f.addr, PathPrefix, f.token(t, "job1"))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if b, err := exec.CommandContext(ctx, bin, "-b", fmt.Sprint(size), "-o", out, uri).CombinedOutput(); err != nil {
				t.Fatalf("coap-client-notls: %v\n%s", err, b)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(got)
			if hex.EncodeToString(h[:]) != f.sum {
				t.Fatalf("got %d bytes with another SHA-256 (want %d bytes)", len(got), len(f.image))
			}
		})
	}
	if n := value(f.srv.m.blocks); n != 256+4096 {
		t.Errorf("blocks served = %v, want %d", n, 256+4096)
	}
}

func TestRefusals(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	short, err := f.tokens.Mint("job1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.add(11 * time.Second)
	good := f.token(t, "job1")
	tampered := []byte(good)
	tampered[len(tampered)/2] ^= 1
	if tampered[len(tampered)/2] == '/' {
		tampered[len(tampered)/2] = 'A'
	}
	other := NewTokens([]byte("another secret of 32 bytes......"), nil)
	forged, _ := other.Mint("job1", time.Hour)

	tests := []struct {
		name   string
		path   string
		code   codes.Code
		diag   string
		reason string
	}{
		{"expired", PathPrefix + short, codes.NotFound, "expired", reasonExpired},
		{"foreign", PathPrefix + f.token(t, "foreign"), codes.Forbidden, "", reasonForbidden},
		{"job not active", PathPrefix + f.token(t, "gone"), codes.Forbidden, "", reasonForbidden},
		{"tampered", PathPrefix + string(tampered), codes.NotFound, "", reasonInvalid},
		{"other secret", PathPrefix + forged, codes.NotFound, "", reasonInvalid},
		{"garbage", PathPrefix + "not-a-token", codes.NotFound, "", reasonInvalid},
		{"no token", "/fw", codes.NotFound, "", reasonInvalid},
		{"extra segment", PathPrefix + good + "/x", codes.NotFound, "", reasonInvalid},
	}
	c := newRawClient(t, f.addr)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := value(f.srv.m.refused.WithLabelValues(tc.reason))
			r, err := c.get(tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tc.code || string(r.payload) != tc.diag {
				t.Fatalf("got %v %q, want %v %q", r.code, r.payload, tc.code, tc.diag)
			}
			if after := value(f.srv.m.refused.WithLabelValues(tc.reason)); after != before+1 {
				t.Errorf("refused{reason=%q} went %v -> %v", tc.reason, before, after)
			}
		})
	}
	t.Run("grants failing", func(t *testing.T) {
		f.grants.mu.Lock()
		f.grants.fail = errors.New("database down")
		f.grants.mu.Unlock()
		defer func() { f.grants.mu.Lock(); f.grants.fail = nil; f.grants.mu.Unlock() }()
		r, err := c.get(PathPrefix+f.token(t, "job2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != codes.ServiceUnavailable {
			t.Fatalf("got %v, want 5.03", r.code)
		}
	})
}

func TestBlobStoreFailure(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	f.grants.jobs["missing"] = Grant{BlobKey: "images/sha256/none", Size: 4096, SHA256: f.sum}
	r, err := newRawClient(t, f.addr).get(PathPrefix+f.token(t, "missing"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != codes.ServiceUnavailable {
		t.Fatalf("got %v, want 5.03", r.code)
	}
}

// Some clients send the first request of a pull without a Block2 option.
func TestFirstRequestWithoutBlock2(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	r, err := newRawClient(t, f.addr).get(PathPrefix+f.token(t, "job1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := transport.Block{Set: true, Num: 0, More: true, SZX: 6}
	if r.code != codes.Content || r.block2 == nil || *r.block2 != want {
		t.Fatalf("got %v block2 %+v, want 2.05 %+v", r.code, r.block2, want)
	}
	if r.size2 != imageSize {
		t.Errorf("Size2 = %d, want %d", r.size2, imageSize)
	}
	h := sha256.Sum256(f.image)
	if !bytes.Equal(r.etag, h[:8]) {
		t.Errorf("ETag = %x, want %x", r.etag, h[:8])
	}
	if !bytes.Equal(r.payload, f.image[:1024]) {
		t.Errorf("payload is not the image's first 1024 bytes")
	}
}

// Each block request carries a new token (rawClient does so) and the server keeps nothing.
func TestNewTokenPerBlock(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	for _, szx := range []uint8{6, 5, 2} {
		got, err := newRawClient(t, f.addr).fetch(PathPrefix+f.token(t, "job1"), szx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.image) {
			t.Fatalf("szx %d: image differs (%d bytes)", szx, len(got))
		}
	}
}

// RFC 7959 §2.2: a block beyond the body is 4.02 Bad Option.
func TestBlockPastEnd(t *testing.T) {
	f := startServer(t, Config{}, imageSize+100)
	c := newRawClient(t, f.addr)
	path := PathPrefix + f.token(t, "job1")
	r, err := c.get(path, &transport.Block{Num: 256, SZX: 6})
	if err != nil {
		t.Fatal(err)
	}
	if r.code != codes.Content || r.block2.More || len(r.payload) != 100 || !bytes.Equal(r.payload, f.image[imageSize:]) {
		t.Fatalf("last block: %v %+v %d bytes", r.code, r.block2, len(r.payload))
	}
	for _, num := range []uint32{257, 1000, 1<<20 - 1} {
		r, err := c.get(path, &transport.Block{Num: num, SZX: 6})
		if err != nil {
			t.Fatal(err)
		}
		if r.code != codes.BadOption {
			t.Fatalf("block %d: got %v, want 4.02", num, r.code)
		}
	}
}

// A client may change the block size mid-transfer; a size above the server's maximum is
// lowered and the block number counted in the server's size (RFC 7959 §2.4).
func TestBlockSizeChange(t *testing.T) {
	f := startServer(t, Config{BlockSize: 512}, imageSize)
	c := newRawClient(t, f.addr)
	path := PathPrefix + f.token(t, "job1")

	r, err := c.get(path, &transport.Block{Num: 3, SZX: 6}) // offset 3072
	if err != nil {
		t.Fatal(err)
	}
	want := transport.Block{Set: true, Num: 6, More: true, SZX: 5}
	if r.code != codes.Content || *r.block2 != want || !bytes.Equal(r.payload, f.image[3072:3584]) {
		t.Fatalf("got %v %+v, want %+v with the bytes at 3072", r.code, r.block2, want)
	}

	var img []byte
	num, szx := uint32(0), uint8(5)
	for {
		if len(img) == 10*512 {
			num, szx = uint32(len(img)/64), 2 // switch to 64-byte blocks
		}
		if len(img) == 20*1024 {
			num, szx = uint32(len(img)/1024), 6 // ask for 1024: served 512
		}
		r, err := c.get(path, &transport.Block{Num: num, SZX: szx})
		if err != nil {
			t.Fatal(err)
		}
		if r.code != codes.Content {
			t.Fatalf("offset %d: %v", len(img), r.code)
		}
		img = append(img, r.payload...)
		if !r.block2.More {
			break
		}
		num, szx = r.block2.Num+1, r.block2.SZX
	}
	if !bytes.Equal(img, f.image) {
		t.Fatalf("image differs (%d bytes)", len(img))
	}
}

// 200 devices pulling the same image at once read each chunk from the blob store once.
func TestCacheSharedReads(t *testing.T) {
	// A long grant TTL: this test is about caching, and a transfer under -race can outlast the default.
	f := startServer(t, Config{GrantTTL: time.Minute}, imageSize)
	path := PathPrefix + f.token(t, "job1")
	const fetchers = 200
	var wg sync.WaitGroup
	errs := make(chan error, fetchers)
	for range fetchers {
		c := newRawClient(t, f.addr)
		wg.Go(func() {
			got, err := c.fetch(path, 6)
			if err == nil && !bytes.Equal(got, f.image) {
				err = errors.New("image differs")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	opens := f.blobs.snapshot()
	if len(opens) != imageSize/(64<<10) {
		t.Errorf("%d distinct chunk reads, want %d: %v", len(opens), imageSize/(64<<10), opens)
	}
	for k, n := range opens {
		if n != 1 {
			t.Errorf("%s read %d times", k, n)
		}
	}
	if calls := f.grants.callCount(); calls > fetchers {
		t.Errorf("Grants asked %d times for %d fetchers: each (job, device) should be asked once", calls, fetchers)
	}
}

func TestCacheEviction(t *testing.T) {
	f := startServer(t, Config{CacheBytes: 128 << 10}, imageSize)
	path := PathPrefix + f.token(t, "job1")
	c := newRawClient(t, f.addr)
	for range 2 {
		got, err := c.fetch(path, 6)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.image) {
			t.Fatal("image differs")
		}
	}
	// Two passes over 4 chunks through a 2-chunk cache: every chunk read twice.
	for k, n := range f.blobs.snapshot() {
		if n != 2 {
			t.Errorf("%s read %d times, want 2", k, n)
		}
	}
	if ev := value(f.srv.m.cacheEvictions); ev != 6 {
		t.Errorf("evictions = %v, want 6", ev)
	}
	if b := value(f.srv.m.cacheBytes); b != 128<<10 {
		t.Errorf("cache bytes = %v, want %d", b, 128<<10)
	}
}

func TestGrantCached(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	if _, err := newRawClient(t, f.addr).fetch(PathPrefix+f.token(t, "job1"), 6); err != nil {
		t.Fatal(err)
	}
	if calls := f.grants.callCount(); calls > 2 { // one, or two if the transfer crossed a 2 s boundary
		t.Errorf("Grants asked %d times for one transfer", calls)
	}
}

// A Grants that is a Tracker hears the end of every block served, in the client's block size,
// and nothing of refused requests.
func TestTrackerHearsEveryBlock(t *testing.T) {
	f := startServer(t, Config{}, imageSize+100)
	c := newRawClient(t, f.addr)
	path := PathPrefix + f.token(t, "job1")
	if _, err := c.fetch(path, 5); err != nil {
		t.Fatal(err)
	}
	for _, refused := range []struct {
		path  string
		block transport.Block
	}{
		{path, transport.Block{Num: 1000, SZX: 6}},                    // past the end: 4.02
		{PathPrefix + f.token(t, "foreign"), transport.Block{SZX: 6}}, // 4.03
	} {
		if r, err := c.get(refused.path, &refused.block); err != nil || r.code == codes.Content {
			t.Fatalf("%s %+v: %v %v, want a refusal", refused.path, refused.block, r.code, err)
		}
	}
	got := f.grants.servedTo("job1")
	if len(got) != imageSize/512+1 {
		t.Fatalf("%d blocks reported, want %d", len(got), imageSize/512+1)
	}
	for i, end := range got {
		if want := min(int64(i+1)*512, imageSize+100); end != want {
			t.Fatalf("block %d reported ending at %d, want %d", i, end, want)
		}
	}
	if n := len(f.grants.servedTo("foreign")); n != 0 {
		t.Errorf("%d refused blocks reported", n)
	}
}

func TestURILength(t *testing.T) {
	f := startServer(t, Config{}, 1024)
	base := "coap://" + strings.Repeat("h", 64) + ":65535"
	uri, err := f.srv.URI(base, strings.Repeat("j", MaxJobIDLen), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(uri) > 255 {
		t.Fatalf("URI is %d characters: %s", len(uri), uri)
	}
	if _, err := f.srv.URI("coap://"+strings.Repeat("h", 250), "j", time.Hour); !errors.Is(err, ErrURITooLong) {
		t.Fatalf("long base: err = %v, want ErrURITooLong", err)
	}
	uri, err = f.srv.URI("coap://"+f.addr.String()+"/", "job1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(uri, "coap://"+f.addr.String()+PathPrefix)
	if job, err := f.tokens.Parse(tok); err != nil || job != "job1" {
		t.Fatalf("Parse(%q) = %q, %v", tok, job, err)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// Reader serves a push from the same chunk cache as pulls: any byte range reads right, and
// the blob store is read once per chunk however many readers ask.
func TestReaderReadsThroughTheCache(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ChunkSize = 4096
	f := startServer(t, cfg, 10000)
	g := f.grants.jobs["job1"]
	for i := 0; i < 3; i++ { // three devices being pushed the same image
		r := f.srv.Reader(context.Background(), g.BlobKey, g.Size)
		for _, c := range []struct{ off, n int }{{0, 1024}, {4000, 200}, {9000, 1000}, {4096, 4096}} {
			p := make([]byte, c.n)
			n, err := r.ReadAt(p, int64(c.off))
			if err != nil || n != c.n || !bytes.Equal(p, f.image[c.off:c.off+c.n]) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v; bytes equal %v", c.off, c.n, n, err, bytes.Equal(p[:n], f.image[c.off:c.off+n]))
			}
		}
		p := make([]byte, 100)
		if n, err := r.ReadAt(p, 9950); n != 50 || err != io.EOF {
			t.Fatalf("ReadAt past the end = %d, %v; want 50, EOF", n, err)
		}
	}
	for k, n := range f.blobs.snapshot() {
		if n != 1 {
			t.Errorf("blob store read %s %d times, want once", k, n)
		}
	}
	if len(f.blobs.snapshot()) != 3 {
		t.Errorf("chunks read: %v, want 3", f.blobs.snapshot())
	}
}
