package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
	"github.com/lwota/lwota/server/apitoken"
)

// fakeImages stands in for firmware.Catalog: it records what the API hands it and reads upload bodies
// the way the catalog does, in small chunks, keeping only a digest of large ones.
type fakeImages struct {
	mu        sync.Mutex
	images    []*firmware.Image // sorted by ID
	content   map[string][]byte
	keys      []*signing.Key
	uploadErr error // returned by Upload after reading the body
	deleteErr error
	keyErr    error
	uploads   []fakeUpload
	filters   []firmware.ImageFilter
	opens     [][2]int64
	deleted   []string
	hashOnly  bool // keep no upload bytes, only their digest
}

type fakeUpload struct {
	req     firmware.UploadRequest
	body    []byte // only for bodies up to 1 MiB
	n       int64
	sha256  string
	maxRead int // the largest single Read
}

const fakeChunk = 32 << 10

func (f *fakeImages) Upload(_ context.Context, req firmware.UploadRequest, body io.Reader) (*firmware.Image, error) {
	up := fakeUpload{req: req}
	h := sha256.New()
	buf := make([]byte, fakeChunk)
	var kept bytes.Buffer
	for {
		n, err := body.Read(buf)
		up.n += int64(n)
		up.maxRead = max(up.maxRead, n)
		h.Write(buf[:n])
		if !f.hashOnly && kept.Len()+n <= 1<<20 {
			kept.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("firmware: read upload: %w", err)
		}
	}
	up.sha256 = hex.EncodeToString(h.Sum(nil))
	if !f.hashOnly && up.n <= 1<<20 {
		up.body = kept.Bytes()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, up)
	if f.uploadErr != nil {
		return nil, f.uploadErr
	}
	img := &firmware.Image{
		ID: fmt.Sprintf("img-%d", len(f.uploads)), Name: req.Name, Version: req.Version, Target: req.Target,
		Size: up.n, SHA256: up.sha256, KeyID: req.KeyID, Signature: req.Signature, Uploader: req.Uploader,
		CreatedAt: testNow, ReleaseNotes: req.ReleaseNotes, Labels: req.Labels, Unsigned: req.Signature == nil,
	}
	if req.Signature != nil {
		img.SignatureAlg = signing.Ed25519
	}
	return img, nil
}

func (f *fakeImages) onlyUpload(t *testing.T) fakeUpload {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.uploads) != 1 {
		t.Fatalf("Upload called %d times, want 1", len(f.uploads))
	}
	return f.uploads[0]
}

func (f *fakeImages) uploadCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}

func (f *fakeImages) Image(_ context.Context, id string) (*firmware.Image, error) {
	for _, img := range f.images {
		if img.ID == id {
			return img, nil
		}
	}
	return nil, firmware.ErrNotFound
}

func (f *fakeImages) Images(_ context.Context, flt firmware.ImageFilter) ([]*firmware.Image, error) {
	f.mu.Lock()
	f.filters = append(f.filters, flt)
	f.mu.Unlock()
	var out []*firmware.Image
	for _, img := range f.images {
		if img.ID <= flt.After || flt.Model != "" && img.Target.Model != flt.Model || flt.Version != "" && img.Version != flt.Version {
			continue
		}
		out = append(out, img)
		if flt.Limit > 0 && len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeImages) Delete(_ context.Context, id string) error {
	if f.deleteErr != nil {
		return f.deleteErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, id)
	for i, img := range f.images {
		if img.ID == id {
			f.images = slices.Delete(f.images, i, i+1)
			return nil
		}
	}
	for i := range f.uploads {
		if id == fmt.Sprintf("img-%d", i+1) { // made by Upload
			return nil
		}
	}
	return firmware.ErrNotFound
}

func (f *fakeImages) Open(_ context.Context, id string, offset, length int64) (io.ReadCloser, *firmware.Image, error) {
	img, err := f.Image(context.Background(), id)
	if err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	f.opens = append(f.opens, [2]int64{offset, length})
	f.mu.Unlock()
	b := f.content[id][offset:]
	if length >= 0 {
		b = b[:length]
	}
	return io.NopCloser(bytes.NewReader(b)), img, nil
}

func (f *fakeImages) AddKey(_ context.Context, name string, pem []byte) (*signing.Key, error) {
	if f.keyErr != nil {
		return nil, f.keyErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := &signing.Key{ID: fmt.Sprintf("key-%d", len(f.keys)+1), Name: name, Algorithm: signing.Ed25519,
		PublicKeyPEM: string(pem), Fingerprint: "ab12", CreatedAt: testNow}
	f.keys = append(f.keys, k)
	return k, nil
}

func (f *fakeImages) Keys(context.Context) ([]*signing.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys), f.keyErr
}

func (f *fakeImages) RevokeKey(_ context.Context, id string) (*signing.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k.ID == id {
			k.RevokedAt = testNow.Add(time.Hour)
			return k, nil
		}
	}
	return nil, firmware.ErrKeyNotFound
}

func newImageEnv(t *testing.T, maxUpload int64) (*testEnv, *fakeImages) {
	t.Helper()
	env := newTestEnv(t, Config{})
	f := &fakeImages{content: map[string][]byte{}}
	env.api.WithImages(f, maxUpload)
	return env, f
}

type part struct {
	name string
	body []byte
}

// multipartBody builds a multipart/form-data body from parts, in order.
func multipartBody(t *testing.T, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.name+".bin"))
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func serve(h http.Handler, req *http.Request) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestImageUploadMultipart(t *testing.T) {
	env, f := newImageEnv(t, 0)
	file := bytes.Repeat([]byte("firmware\x00\xff"), 5000)
	sig := bytes.Repeat([]byte{0xAB}, 64)
	meta := fmt.Sprintf(`{"name":"app","version":"1.4.2","target":{"manufacturer":"ACME","model":"X1","device_type":"meter","labels":{"region":"eu"}},
		"release_notes":"fixes","labels":{"channel":"beta"},"key_id":"key-1","size":%d,"sha256":%q}`, len(file), hexSHA(file))
	body, ct := multipartBody(t, part{"metadata", []byte(meta)}, part{"signature", sig}, part{"file", file})
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", body)
	req.Header.Set("Content-Type", ct)
	req.Header.Set(HeaderUploader, "ci@example.com")
	r := serve(env.h, req)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	up := f.onlyUpload(t)
	if !bytes.Equal(up.body, file) {
		t.Fatalf("catalog got %d bytes, want the %d of the file part", len(up.body), len(file))
	}
	want := firmware.UploadRequest{
		Name: "app", Version: "1.4.2",
		Target:       firmware.Selector{Manufacturer: "ACME", Model: "X1", DeviceType: "meter", Labels: map[string]string{"region": "eu"}},
		ReleaseNotes: "fixes", Labels: map[string]string{"channel": "beta"}, Signature: sig, KeyID: "key-1",
		Size: int64(len(file)), SHA256: hexSHA(file), Uploader: "token:admin", // the token's name: the header is not a proof
	}
	if !reflect.DeepEqual(up.req, want) {
		t.Fatalf("upload request\n got %+v\nwant %+v", up.req, want)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/images/img-1" {
		t.Fatalf("Location %q", loc)
	}
	var got imageJSON
	decodeJSON(t, r.body, &got)
	if got.ID != "img-1" || got.SHA256 != hexSHA(file) || got.Size != int64(len(file)) || !bytes.Equal(got.Signature, sig) ||
		got.SignatureAlgorithm != "ed25519" || got.Links.Content != "/api/v1/images/img-1/content" || got.Target.Model != "X1" {
		t.Fatalf("answer %s", r.body)
	}
}

// TestImageUploadStreams sends a 20 MiB file part through a pipe: the catalog must see it in small
// reads while it arrives, and the API must not hold it in memory.
func TestImageUploadStreams(t *testing.T) {
	const size = 20 << 20
	env, f := newImageEnv(t, 0)
	f.hashOnly = true
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	want := sha256.New()
	go func() {
		err := func() error {
			w, err := mw.CreateFormField("metadata")
			if err != nil {
				return err
			}
			fmt.Fprintf(w, `{"name":"big","version":"2.0.0","size":%d}`, size)
			if w, err = mw.CreateFormField("signature"); err != nil {
				return err
			}
			w.Write(make([]byte, 64))
			if w, err = mw.CreateFormFile("file", "big.bin"); err != nil {
				return err
			}
			chunk := make([]byte, 64<<10)
			for i := 0; i < size/len(chunk); i++ {
				for j := range chunk {
					chunk[j] = byte(i + j)
				}
				want.Write(chunk)
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := serve(env.h, req)
	runtime.ReadMemStats(&after)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	up := f.onlyUpload(t)
	if up.n != size || up.sha256 != hex.EncodeToString(want.Sum(nil)) || up.req.Size != size {
		t.Fatalf("catalog got %d bytes (declared %d), sha256 %s", up.n, up.req.Size, up.sha256)
	}
	if up.maxRead > fakeChunk {
		t.Fatalf("largest read %d", up.maxRead)
	}
	// Everything allocated during the request, the writer goroutine's included: a buffered 20 MiB
	// would show here whether or not it was freed since.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Fatalf("uploading 20 MiB allocated %d KiB; the file part is not streamed", alloc>>10)
	}
}

func TestImageUploadRaw(t *testing.T) {
	env, f := newImageEnv(t, 0)
	file := []byte(strings.Repeat("0123456789abcdef", 4096))
	sig := []byte("\x01\x02signature\xff")
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(file))
	for k, v := range map[string]string{
		"Content-Type":     "application/octet-stream",
		HeaderName:         "app%20main",
		HeaderVersion:      "1.4.2+build.7",
		HeaderManufacturer: "ACME",
		HeaderModel:        "X1",
		HeaderDeviceType:   "meter",
		HeaderLabels:       "channel=beta, team=fw%2Ccore",
		HeaderTargetLabels: "region=eu",
		HeaderReleaseNotes: "Fixes%0A-%20crash%20%E2%80%94%20100%25",
		HeaderSignature:    base64.StdEncoding.EncodeToString(sig),
		HeaderKeyID:        "key-1",
		HeaderSHA256:       hexSHA(file),
		HeaderUploader:     "ci",
	} {
		req.Header.Set(k, v)
	}
	r := serve(env.h, req)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	up := f.onlyUpload(t)
	want := firmware.UploadRequest{
		Name: "app main", Version: "1.4.2+build.7",
		Target:       firmware.Selector{Manufacturer: "ACME", Model: "X1", DeviceType: "meter", Labels: map[string]string{"region": "eu"}},
		ReleaseNotes: "Fixes\n- crash — 100%", Labels: map[string]string{"channel": "beta", "team": "fw,core"},
		Signature: sig, KeyID: "key-1", Size: int64(len(file)), SHA256: hexSHA(file), Uploader: "token:admin",
	}
	if !reflect.DeepEqual(up.req, want) {
		t.Fatalf("upload request\n got %+v\nwant %+v", up.req, want)
	}
	if !bytes.Equal(up.body, file) {
		t.Fatalf("catalog got other bytes")
	}

	// Chunked: the size is unknown. Unpadded base64 is fine.
	req = httptest.NewRequest(http.MethodPost, "/api/v1/images", io.NopCloser(bytes.NewReader(file)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderVersion, "1")
	req.Header.Set(HeaderSignature, base64.RawStdEncoding.EncodeToString(sig))
	if r := serve(env.h, req); r.status != http.StatusCreated {
		t.Fatalf("chunked: status %d: %s", r.status, r.body)
	}
	if up := f.uploads[1]; up.req.Size != -1 || !bytes.Equal(up.req.Signature, sig) {
		t.Fatalf("chunked: size %d, signature %q", up.req.Size, up.req.Signature)
	}
}

// TestImageUploadNotJSONCapped: images are not held to MaxBodyBytes, only to the image maximum.
func TestImageUploadNotJSONCapped(t *testing.T) {
	env, f := newImageEnv(t, 0)
	file := make([]byte, 3<<20) // the JSON cap is 1 MiB
	body, ct := multipartBody(t, part{"metadata", []byte(`{"version":"1"}`)}, part{"file", file})
	rawReq := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(file))
	rawReq.Header.Set("Content-Type", "application/octet-stream")
	mpReq := httptest.NewRequest(http.MethodPost, "/api/v1/images", body)
	mpReq.Header.Set("Content-Type", ct)
	for _, req := range []*http.Request{rawReq, mpReq} {
		if r := serve(env.h, req); r.status != http.StatusCreated {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if f.uploadCount() != 2 || f.uploads[0].n != 3<<20 || f.uploads[1].n != 3<<20 {
		t.Fatalf("uploads %d", f.uploadCount())
	}
	// The key route keeps the JSON cap.
	r := env.do(t, http.MethodPost, "/api/v1/signing-keys", `{"name":"k","public_key_pem":"`+strings.Repeat("A", 2<<20)+`"}`)
	wantError(t, r, http.StatusRequestEntityTooLarge, codeBodyTooLarge)
}

// readSpy fails the test's expectations if anyone reads it.
type readSpy struct{ reads int }

func (s *readSpy) Read(p []byte) (int, error) { s.reads++; return 0, io.EOF }

func TestImageUploadTooLarge(t *testing.T) {
	const max = 1000
	t.Run("Content-Length over the max, raw", func(t *testing.T) {
		env, f := newImageEnv(t, max)
		spy := &readSpy{}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/images", spy)
		req.ContentLength = max + 1
		req.Header.Set("Content-Type", "application/octet-stream")
		msg := wantError(t, serve(env.h, req), http.StatusRequestEntityTooLarge, codeImageTooLarge)
		if f.uploadCount() != 0 || spy.reads != 0 {
			t.Fatalf("Upload called %d times, body read %d times", f.uploadCount(), spy.reads)
		}
		if !strings.Contains(msg, "1000 bytes") {
			t.Fatalf("message %q does not give the limit", msg)
		}
	})
	t.Run("Content-Length over the max, multipart", func(t *testing.T) {
		env, f := newImageEnv(t, max)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/images", &readSpy{})
		req.ContentLength = 1 << 30
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		wantError(t, serve(env.h, req), http.StatusRequestEntityTooLarge, codeImageTooLarge)
		if f.uploadCount() != 0 {
			t.Fatalf("Upload called")
		}
	})
	t.Run("chunked body over the max", func(t *testing.T) {
		env, _ := newImageEnv(t, max)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/images", io.NopCloser(bytes.NewReader(make([]byte, max+1))))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/octet-stream")
		wantError(t, serve(env.h, req), http.StatusRequestEntityTooLarge, codeImageTooLarge)
	})
	t.Run("exactly the max", func(t *testing.T) {
		env, _ := newImageEnv(t, max)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(make([]byte, max)))
		req.Header.Set("Content-Type", "application/octet-stream")
		if r := serve(env.h, req); r.status != http.StatusCreated {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
}

// TestImageUploadErrors maps each catalog error to its answer.
func TestImageUploadErrors(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: version 1.4.2 but MCUboot header says 1.4.3", firmware.ErrInvalid), 400, codeInvalidImage},
		{firmware.ErrUnsigned, 400, codeSignatureRequired},
		{fmt.Errorf("%w: tried 2 keys", firmware.ErrBadSignature), 422, codeBadSignature},
		{fmt.Errorf("%w: got 00ff", firmware.ErrHashMismatch), 422, codeHashMismatch},
		{fmt.Errorf("%w: 10 of 20 bytes", firmware.ErrTruncated), 400, codeTruncated},
		{fmt.Errorf("%w: over 64 MiB", firmware.ErrTooLarge), 413, codeImageTooLarge},
		{firmware.ErrNotFound, 404, codeNotFound},
		{fmt.Errorf("%w: key-9", firmware.ErrKeyNotFound), 404, codeNotFound},
		{firmware.ErrInUse, 409, codeImageInUse},
		{fmt.Errorf("put images/tmp/1: %w: s3: connection refused", firmware.ErrStorage), 503, codeStorageUnavailable},
		{errors.New("something unexpected"), 500, codeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+tt.err.Error(), func(t *testing.T) {
			env, f := newImageEnv(t, 0)
			f.uploadErr = tt.err
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader("bytes"))
			req.Header.Set("Content-Type", "application/octet-stream")
			msg := wantError(t, serve(env.h, req), tt.status, tt.code)
			if strings.Contains(msg, "firmware:") || strings.Contains(msg, "s3") {
				t.Fatalf("message %q shows package names or storage details", msg)
			}
		})
	}
}

func TestImageUploadBadRequests(t *testing.T) {
	file := []byte("image bytes")
	meta := []byte(`{"version":"1.0.0"}`)
	mp := func(parts ...part) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			body, ct := multipartBody(t, parts...)
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", body)
			req.Header.Set("Content-Type", ct)
			return req
		}
	}
	raw := func(h ...string) func(t *testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", bytes.NewReader(file))
			req.Header.Set("Content-Type", "application/octet-stream")
			for i := 0; i+1 < len(h); i += 2 {
				req.Header.Set(h[i], h[i+1])
			}
			return req
		}
	}
	tests := []struct {
		name     string
		req      func(t *testing.T) *http.Request
		status   int
		code     string
		msg      string // a part of the message
		uploaded bool   // Upload was called (and its image then removed)
	}{
		{name: "missing file part", req: mp(part{"metadata", meta}, part{"signature", []byte("s")}),
			status: 400, code: codeInvalidUpload, msg: "no file part"},
		{name: "empty form", req: mp(), status: 400, code: codeInvalidUpload, msg: "no metadata part and no file part"},
		{name: "metadata after file", req: mp(part{"file", file}, part{"metadata", meta}),
			status: 400, code: codeInvalidUpload, msg: "metadata part must come before the file part"},
		{name: "signature after file", req: mp(part{"metadata", meta}, part{"file", file}, part{"signature", []byte("s")}),
			status: 400, code: codeInvalidUpload, msg: `"signature" part after the file part`, uploaded: true},
		{name: "unknown part", req: mp(part{"metadata", meta}, part{"checksum", []byte("x")}, part{"file", file}),
			status: 400, code: codeInvalidUpload, msg: `unknown part "checksum"`},
		{name: "two metadata parts", req: mp(part{"metadata", meta}, part{"metadata", meta}, part{"file", file}),
			status: 400, code: codeInvalidUpload, msg: "two metadata parts"},
		{name: "empty signature", req: mp(part{"metadata", meta}, part{"signature", nil}, part{"file", file}),
			status: 400, code: codeInvalidUpload, msg: "signature part is empty"},
		{name: "metadata with unknown field", req: mp(part{"metadata", []byte(`{"version":"1","colour":"red"}`)}, part{"file", file}),
			status: 400, code: codeInvalidJSON, msg: "metadata part"},
		{name: "metadata not JSON", req: mp(part{"metadata", []byte(`version=1`)}, part{"file", file}),
			status: 400, code: codeInvalidJSON, msg: "metadata part"},
		{name: "multipart without boundary", req: func(t *testing.T) *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader("x"))
			req.Header.Set("Content-Type", "multipart/form-data")
			return req
		}, status: 400, code: codeInvalidUpload, msg: "multipart"},
		{name: "JSON body", req: func(t *testing.T) *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			return req
		}, status: 415, code: codeUnsupportedMediaType, msg: "multipart/form-data or application/octet-stream"},
		{name: "no content type", req: func(t *testing.T) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader(`x`))
		}, status: 415, code: codeUnsupportedMediaType},
		{name: "labels not k=v", req: raw(HeaderLabels, "beta"), status: 400, code: codeInvalidUpload, msg: HeaderLabels},
		{name: "label twice", req: raw(HeaderTargetLabels, "a=1,a=2"), status: 400, code: codeInvalidUpload, msg: `label "a" twice`},
		{name: "signature not base64", req: raw(HeaderSignature, "not*base64"), status: 400, code: codeInvalidUpload, msg: HeaderSignature},
		{name: "notes not percent-encoded", req: raw(HeaderReleaseNotes, "100% done"), status: 400, code: codeInvalidUpload, msg: HeaderReleaseNotes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newImageEnv(t, 0)
			msg := wantError(t, serve(env.h, tt.req(t)), tt.status, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Fatalf("message %q lacks %q", msg, tt.msg)
			}
			if got := f.uploadCount() == 1; got != tt.uploaded {
				t.Fatalf("Upload called: %v, want %v", got, tt.uploaded)
			}
			if tt.uploaded && !slices.Equal(f.deleted, []string{"img-1"}) {
				t.Fatalf("deleted %v, want the misordered upload removed", f.deleted)
			}
		})
	}
}

func TestImageUploadUnsignedHint(t *testing.T) {
	env, f := newImageEnv(t, 0)
	f.uploadErr = firmware.ErrUnsigned
	body, ct := multipartBody(t, part{"metadata", []byte(`{"version":"1"}`)}, part{"file", []byte("x")})
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", body)
	req.Header.Set("Content-Type", ct)
	msg := wantError(t, serve(env.h, req), 400, codeSignatureRequired)
	if !strings.Contains(msg, "signature part must come before the file part") {
		t.Fatalf("message %q", msg)
	}
}

// TestImageUploaderFromContext: the authenticated token is the uploader, whatever the header or an
// outer context say.
func TestImageUploaderFromContext(t *testing.T) {
	env, f := newImageEnv(t, 0)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.h.ServeHTTP(w, r.WithContext(WithUploader(r.Context(), "token:someone-else")))
	})
	req := httptest.NewRequest(http.MethodPost, "/api/v1/images", strings.NewReader("x"))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderUploader, "someone else")
	req.Header.Set("Authorization", bearer(env.auth.secrets[apitoken.RoleCI]))
	if r := serve(h, req); r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := f.onlyUpload(t).req.Uploader; got != "token:ci" {
		t.Fatalf("uploader %q", got)
	}
}

func TestImagesWithoutCatalog(t *testing.T) {
	env := newTestEnv(t, Config{})
	for _, rt := range [][2]string{
		{"GET", "/api/v1/images"}, {"POST", "/api/v1/images"}, {"GET", "/api/v1/images/x"},
		{"GET", "/api/v1/images/x/content"}, {"DELETE", "/api/v1/images/x"},
		{"GET", "/api/v1/signing-keys"}, {"POST", "/api/v1/signing-keys"}, {"DELETE", "/api/v1/signing-keys/x"},
	} {
		msg := wantError(t, env.do(t, rt[0], rt[1], ""), 404, codeNotFound)
		if !strings.Contains(msg, "no firmware image catalog") {
			t.Fatalf("%s %s: %q", rt[0], rt[1], msg)
		}
	}
}

func contentEnv(t *testing.T) (*testEnv, *fakeImages, []byte) {
	t.Helper()
	env, f := newImageEnv(t, 0)
	content := make([]byte, 1000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	f.images = []*firmware.Image{{ID: "img-a", Name: "app", Version: "1.0.0", Size: 1000, SHA256: hexSHA(content), CreatedAt: testNow}}
	f.content["img-a"] = content
	return env, f, content
}

func TestImageContent(t *testing.T) {
	etag := ""
	tests := []struct {
		name   string
		header []string
		status int
		from   int64 // the bytes expected, when status is 200 or 206
		to     int64 // exclusive
		crange string
	}{
		{name: "no range", status: 200, from: 0, to: 1000},
		{name: "first bytes", header: []string{"Range", "bytes=0-99"}, status: 206, from: 0, to: 100, crange: "bytes 0-99/1000"},
		{name: "middle", header: []string{"Range", "bytes=500-509"}, status: 206, from: 500, to: 510, crange: "bytes 500-509/1000"},
		{name: "open-ended", header: []string{"Range", "bytes=900-"}, status: 206, from: 900, to: 1000, crange: "bytes 900-999/1000"},
		{name: "suffix", header: []string{"Range", "bytes=-100"}, status: 206, from: 900, to: 1000, crange: "bytes 900-999/1000"},
		{name: "suffix longer than the image", header: []string{"Range", "bytes=-5000"}, status: 206, from: 0, to: 1000, crange: "bytes 0-999/1000"},
		{name: "end past the image is clamped", header: []string{"Range", "bytes=990-5000"}, status: 206, from: 990, to: 1000, crange: "bytes 990-999/1000"},
		{name: "last byte", header: []string{"Range", "bytes=999-999"}, status: 206, from: 999, to: 1000, crange: "bytes 999-999/1000"},
		{name: "start at the end", header: []string{"Range", "bytes=1000-"}, status: 416, crange: "bytes */1000"},
		{name: "start past the end", header: []string{"Range", "bytes=2000-3000"}, status: 416, crange: "bytes */1000"},
		{name: "empty suffix", header: []string{"Range", "bytes=-0"}, status: 416, crange: "bytes */1000"},
		{name: "several ranges: whole image", header: []string{"Range", "bytes=0-1,5-6"}, status: 200, from: 0, to: 1000},
		{name: "reversed: ignored", header: []string{"Range", "bytes=9-1"}, status: 200, from: 0, to: 1000},
		{name: "other unit: ignored", header: []string{"Range", "items=0-1"}, status: 200, from: 0, to: 1000},
		{name: "garbage: ignored", header: []string{"Range", "bytes=+1-2"}, status: 200, from: 0, to: 1000},
		{name: "If-Range matches", header: []string{"Range", "bytes=0-9", "If-Range", "ETAG"}, status: 206, from: 0, to: 10, crange: "bytes 0-9/1000"},
		{name: "If-Range differs", header: []string{"Range", "bytes=0-9", "If-Range", `"old"`}, status: 200, from: 0, to: 1000},
		{name: "If-None-Match", header: []string{"If-None-Match", `"old", ETAG`}, status: 304},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f, content := contentEnv(t)
			etag = `"` + hexSHA(content) + `"`
			for i := 1; i < len(tt.header); i += 2 {
				tt.header[i] = strings.ReplaceAll(tt.header[i], "ETAG", etag)
			}
			r := env.do(t, http.MethodGet, "/api/v1/images/img-a/content", "", tt.header...)
			if r.status == 416 {
				wantError(t, r, 416, codeRangeNotSatisfiable)
			} else if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.header.Get("Content-Range"); got != tt.crange {
				t.Fatalf("Content-Range %q, want %q", got, tt.crange)
			}
			if tt.status == 304 || tt.status == 416 {
				if len(f.opens) != 0 {
					t.Fatalf("the blob was opened")
				}
				return
			}
			if !bytes.Equal(r.body, content[tt.from:tt.to]) {
				t.Fatalf("body is %d bytes, want bytes %d to %d", len(r.body), tt.from, tt.to)
			}
			h := r.header
			if h.Get("ETag") != etag || h.Get("Accept-Ranges") != "bytes" || h.Get("Content-Type") != "application/octet-stream" ||
				h.Get("Content-Length") != strconv.FormatInt(tt.to-tt.from, 10) {
				t.Fatalf("headers %v", h)
			}
			if !slices.Equal(f.opens, [][2]int64{{tt.from, tt.to - tt.from}}) {
				t.Fatalf("Open(offset, length) calls %v", f.opens)
			}
		})
	}
	env, _, _ := contentEnv(t)
	wantError(t, env.do(t, http.MethodGet, "/api/v1/images/nope/content", ""), 404, codeNotFound)
}

func TestImageListPages(t *testing.T) {
	env, f := newImageEnv(t, 0)
	for _, id := range []string{"img-1", "img-2", "img-3", "img-4", "img-5"} {
		f.images = append(f.images, &firmware.Image{ID: id, Version: "1.0.0", Target: firmware.Selector{Model: "X1"}, CreatedAt: testNow})
	}
	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		r := env.do(t, http.MethodGet, "/api/v1/images?model=X1&version=1.0.0&label=channel=beta&label=region=eu&limit=2&cursor="+cursor, "")
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var l imageList
		decodeJSON(t, r.body, &l)
		for _, img := range l.Images {
			ids = append(ids, img.ID)
		}
		if l.NextCursor == "" {
			break
		}
		if page > 3 {
			t.Fatalf("no end to the pages")
		}
		cursor = l.NextCursor
	}
	if !slices.Equal(ids, []string{"img-1", "img-2", "img-3", "img-4", "img-5"}) {
		t.Fatalf("pages gave %v", ids)
	}
	flt := f.filters[1]
	want := firmware.ImageFilter{Model: "X1", Version: "1.0.0", Labels: map[string]string{"channel": "beta", "region": "eu"}, After: "img-2", Limit: 3}
	if !reflect.DeepEqual(flt, want) {
		t.Fatalf("filter %+v, want %+v", flt, want)
	}
	// An empty list is [] and no cursor.
	r := env.do(t, http.MethodGet, "/api/v1/images?model=none", "")
	jsonEqual(t, r.body, `{"images":[]}`)

	for _, q := range []string{"label=beta", "label==x", "cursor=***", "limit=0", "limit=x"} {
		wantError(t, env.do(t, http.MethodGet, "/api/v1/images?"+q, ""), 400, codeInvalidQuery)
	}
}

func TestImageGetAndDelete(t *testing.T) {
	env, f := newImageEnv(t, 0)
	f.images = []*firmware.Image{{ID: "img-a", Name: "app", Version: "1.0.0", Size: 3, SHA256: "abc", CreatedAt: testNow, BlobKey: "secret/key"}}
	r := env.do(t, http.MethodGet, "/api/v1/images/img-a", "")
	jsonEqual(t, r.body, `{"id":"img-a","name":"app","version":"1.0.0","target":{},"size":3,"sha256":"abc",
		"created_at":"2026-03-01T12:00:00Z","usage":{"campaigns":[]},
		"links":{"self":"/api/v1/images/img-a","content":"/api/v1/images/img-a/content"}}`)
	msg := wantError(t, env.do(t, http.MethodGet, "/api/v1/images/nope", ""), 404, codeNotFound)
	if msg != "image nope does not exist" {
		t.Fatalf("message %q", msg)
	}

	f.deleteErr = fmt.Errorf("%w: campaign 7", firmware.ErrInUse)
	wantError(t, env.do(t, http.MethodDelete, "/api/v1/images/img-a", ""), 409, codeImageInUse)
	f.deleteErr = nil
	if r := env.do(t, http.MethodDelete, "/api/v1/images/img-a", ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, env.do(t, http.MethodDelete, "/api/v1/images/img-a", ""), 404, codeNotFound)
	wantError(t, env.do(t, http.MethodPut, "/api/v1/images/img-a", ""), 405, codeMethodNotAllowed)
}
