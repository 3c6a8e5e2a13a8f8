package blobstore_test

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/blobtest"
)

// files lists every file under dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestDirLayout(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "images")
	d, err := blobstore.OpenDir(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Put(ctx, "sha256/ab/abcdef", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "sha256", "ab", "abcdef")); err != nil || string(b) != "x" {
		t.Errorf("file for key sha256/ab/abcdef = %q, %v", b, err)
	}
	// Invalid keys touch nothing, inside the root or out of it.
	for _, key := range blobtest.InvalidKeys {
		if _, err := d.Put(ctx, key, strings.NewReader("evil")); !errors.Is(err, blobstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if got := files(t, parent); !slices.Equal(got, []string{"images/sha256/ab/abcdef"}) {
		t.Errorf("files after invalid keys = %q", got)
	}
}

func TestDirFailedPutLeavesNoFile(t *testing.T) {
	root := t.TempDir()
	d, err := blobstore.OpenDir(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	errSource := errors.New("source broke")
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 100_000)), errReader{errSource})
	if _, err := d.Put(context.Background(), "a/b", r); !errors.Is(err, errSource) {
		t.Fatalf("Put = %v, want the source's error", err)
	}
	if got := files(t, root); len(got) != 0 {
		t.Errorf("files after a failed Put: %q", got)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDirRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, "a", ".lwota-tmp-123")
	fresh := filepath.Join(root, ".lwota-tmp-456")
	if err := os.MkdirAll(filepath.Dir(old), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	d, err := blobstore.OpenDir(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file not removed: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file (a Put in progress elsewhere?) removed: %v", err)
	}
	if keys, err := d.List(context.Background(), ""); err != nil || len(keys) != 0 {
		t.Errorf("List = %q, %v; temporary files are no blobs", keys, err)
	}
}

func TestOpenDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", file, filepath.Join(file, "below")} {
		if _, err := blobstore.OpenDir(dir, nil); err == nil {
			t.Errorf("OpenDir(%q): no error", dir)
		}
	}
}

func TestDirWithoutSigner(t *testing.T) {
	d, err := blobstore.OpenDir(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PresignGet(context.Background(), "k", time.Minute); !errors.Is(err, blobstore.ErrNoPresign) {
		t.Errorf("PresignGet without a signer = %v, want ErrNoPresign", err)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/blobs/k?exp=1&sig=00", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("Handler without a signer = %d, want 404", rec.Code)
	}
}

func TestNewURLSignerErrors(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		secret     []byte
	}{
		{"short secret", "http://h", []byte("short")},
		{"no scheme", "lwota.example:8080", testSecret},
		{"ftp", "ftp://h", testSecret},
		{"query", "http://h/?a=b", testSecret},
		{"not a URL", "http://[::1", testSecret},
	} {
		if _, err := blobstore.NewURLSigner(tc.base, tc.secret, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// sign computes a URL signature the way the README documents it.
func sign(key string, exp int64) string {
	h := hmac.New(sha256.New, testSecret)
	h.Write([]byte(key + "\n" + strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(h.Sum(nil))
}

func TestURLSignerHandler(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	signer, err := blobstore.NewURLSigner("https://lwota.example:8443/ota/", testSecret, clock)
	if err != nil {
		t.Fatal(err)
	}
	d, err := blobstore.OpenDir(t.TempDir(), signer)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := "0123456789abcdefghij"
	if _, err := d.Put(ctx, "img/one", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	u, err := d.PresignGet(ctx, "img/one", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Minute).Unix()
	want := "https://lwota.example:8443/ota/blobs/img/one?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + sign("img/one", exp)
	if u != want {
		t.Fatalf("PresignGet =\n %s, want\n %s", u, want)
	}
	if u2, _ := signer.PresignGet(ctx, "img/one", 1500*time.Millisecond); !strings.Contains(u2, "exp="+strconv.FormatInt(now.Unix()+2, 10)) {
		t.Errorf("ttl 1.5s: %s, want the expiry rounded up to %d", u2, now.Unix()+2)
	}
	path := "/ota/blobs/img/one"
	query := func(key string, exp int64) string {
		return "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + sign(key, exp)
	}
	etag := ""
	for _, tc := range []struct {
		name    string
		method  string
		target  string
		header  []string
		advance time.Duration
		code    int
		body    string
	}{
		{name: "GET", target: path + query("img/one", exp), code: 200, body: body},
		{name: "HEAD", method: http.MethodHead, target: path + query("img/one", exp), code: 200},
		{name: "Range", target: path + query("img/one", exp), header: []string{"Range", "bytes=5-9"}, code: 206, body: "56789"},
		{name: "suffix Range", target: path + query("img/one", exp), header: []string{"Range", "bytes=-3"}, code: 206, body: "hij"},
		{name: "unsatisfiable Range", target: path + query("img/one", exp), header: []string{"Range", "bytes=100-"}, code: 416},
		{name: "If-None-Match", target: path + query("img/one", exp), header: []string{"If-None-Match", "ETAG"}, code: 304},
		{name: "last valid second", target: path + query("img/one", exp), advance: time.Minute, code: 200, body: body},
		{name: "expired", target: path + query("img/one", exp), advance: time.Minute + time.Second, code: 403},
		{name: "POST", method: http.MethodPost, target: path + query("img/one", exp), code: 405},
		{name: "no signature", target: path, code: 403},
		{name: "bad hex", target: path + "?exp=" + strconv.FormatInt(exp, 10) + "&sig=zz", code: 403},
		{name: "longer expiry", target: path + "?exp=" + strconv.FormatInt(exp+3600, 10) + "&sig=" + sign("img/one", exp), code: 403},
		{name: "other key", target: "/ota/blobs/img/two" + query("img/one", exp), code: 403},
		{name: "other secret", target: path + "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + hex.EncodeToString(make([]byte, 32)), code: 403},
		{name: "missing blob", target: "/ota/blobs/img/two" + query("img/two", exp), code: 404},
		{name: "signed escape", target: "/ota/blobs/../../etc/passwd" + query("../../etc/passwd", exp), code: 404},
		{name: "outside the base path", target: "/blobs/img/one" + query("img/one", exp), code: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1_800_000_000, 0).Add(tc.advance)
			req := httptest.NewRequest(cmp.Or(tc.method, http.MethodGet), "http://lwota.example", nil)
			req.URL.Path, req.URL.RawQuery, _ = strings.Cut(tc.target, "?") // unclean paths too
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], strings.ReplaceAll(tc.header[i+1], "ETAG", etag))
			}
			rec := httptest.NewRecorder()
			d.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("%s %s = %d %q, want %d", req.Method, tc.target, rec.Code, rec.Body, tc.code)
			}
			if tc.body != "" && rec.Body.String() != tc.body {
				t.Errorf("body = %q, want %q", rec.Body, tc.body)
			}
			if tc.code == 200 {
				etag = rec.Header().Get("ETag")
				if etag == "" || rec.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
					t.Errorf("headers %v: want an ETag and Content-Length %d", rec.Header(), len(body))
				}
				if tc.method == http.MethodHead && rec.Body.Len() != 0 {
					t.Errorf("HEAD with a body")
				}
			}
			if tc.code == 405 && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("405 without Allow: %v", rec.Header())
			}
		})
	}
}
