package firmware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

// keys are the test's signers: made once with openssl, trusted (or not) per environment.
type testKeys struct {
	ed, ec, revoked, stranger keyPair
}

func makeKeys(t *testing.T) testKeys {
	t.Helper()
	return testKeys{
		ed:       newKeyPair(t, signing.Ed25519),
		ec:       newKeyPair(t, signing.ECDSAP256SHA256),
		revoked:  newKeyPair(t, signing.Ed25519),
		stranger: newKeyPair(t, signing.ECDSAP256SHA256),
	}
}

// trust adds ed, ec and revoked (then revokes it) to e's catalog and returns their IDs by name.
func (k testKeys) trust(t *testing.T, e *env) map[string]*signing.Key {
	t.Helper()
	ctx := context.Background()
	out := map[string]*signing.Key{}
	for name, kp := range map[string]keyPair{"ed": k.ed, "ec": k.ec, "revoked": k.revoked} {
		key, err := e.cat.AddKey(ctx, name, kp.public)
		if err != nil {
			t.Fatalf("AddKey(%s): %v", name, err)
		}
		out[name] = key
	}
	if _, err := e.cat.RevokeKey(ctx, out["revoked"].ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	return out
}

// errReader returns its bytes, then err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// cancelReader cancels its context after the first chunk, as a client hanging up mid-upload.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == 2 {
		r.cancel()
	}
	return r.r.Read(p[:min(len(p), 4096)])
}

// unread fails the test if the upload reads the body: refusals that need no byte of it.
type unread struct{ t *testing.T }

func (u unread) Read([]byte) (int, error) {
	u.t.Error("the body was read")
	return 0, io.EOF
}

func TestUpload(t *testing.T) {
	keys := makeKeys(t)
	fw := pseudoRandom(300<<10, 1) // 300 KiB: several reads, several copy buffers
	other := pseudoRandom(1000, 2)
	boot := mcubootImage(1, 2, 3, 0, pseudoRandom(100<<10, 3))
	bootBad := slices.Clone(boot)
	bootBad[1000] ^= 0xff // the SHA-256 TLV no longer matches
	baseline := pseudoRandom(5000, 4)
	sigs := map[string][]byte{
		"ed": keys.ed.sign(t, fw), "ec": keys.ec.sign(t, fw), "revoked": keys.revoked.sign(t, fw),
		"stranger": keys.stranger.sign(t, fw), "other": keys.ed.sign(t, other),
		"boot": keys.ec.sign(t, boot), "bootBad": keys.ec.sign(t, bootBad), "baseline": keys.ed.sign(t, baseline),
	}
	req := func(sig string, mod ...func(*firmware.UploadRequest)) firmware.UploadRequest {
		r := firmware.UploadRequest{
			Name: "sensor-fw", Version: "1.2.3", Size: -1, Signature: sigs[sig], Uploader: "ci",
			Target:       firmware.Selector{Manufacturer: "Acme", Model: "S1"},
			ReleaseNotes: "Fixes.\n\tMore fixes.", Labels: map[string]string{"channel": "beta"},
		}
		for _, m := range mod {
			m(&r)
		}
		return r
	}
	body := func(b []byte) func(context.CancelFunc) io.Reader {
		return func(context.CancelFunc) io.Reader { return bytes.NewReader(b) }
	}

	tests := []struct {
		name      string
		cfg       firmware.Config // zero: DefaultConfig
		req       firmware.UploadRequest
		body      func(cancel context.CancelFunc) io.Reader
		wantErr   []error // every one must match; nil: accepted
		wantText  string  // in the error
		wantBytes []byte  // accepted: the blob's content
		check     func(t *testing.T, img *firmware.Image, k map[string]*signing.Key)
	}{
		{name: "ed25519", req: req("ed", func(r *firmware.UploadRequest) { r.Size = int64(len(fw)); r.SHA256 = strings.ToUpper(sha(fw)) }),
			body: body(fw), wantBytes: fw,
			check: func(t *testing.T, img *firmware.Image, k map[string]*signing.Key) {
				if img.KeyID != k["ed"].ID || img.SignatureAlg != signing.Ed25519 || img.Unsigned {
					t.Errorf("key %s %s unsigned=%v, want %s ed25519", img.KeyID, img.SignatureAlg, img.Unsigned, k["ed"].ID)
				}
			}},
		{name: "ecdsa", req: req("ec"), body: body(fw), wantBytes: fw,
			check: func(t *testing.T, img *firmware.Image, k map[string]*signing.Key) {
				if img.KeyID != k["ec"].ID || img.SignatureAlg != signing.ECDSAP256SHA256 {
					t.Errorf("key %s %s, want %s ecdsa", img.KeyID, img.SignatureAlg, k["ec"].ID)
				}
			}},
		{name: "ecdsa with its KeyID", req: req("ec", func(r *firmware.UploadRequest) { r.KeyID = "ec" }), body: body(fw), wantBytes: fw},
		{name: "unsigned allowed and marked", cfg: firmware.Config{AllowUnsigned: true}, req: req(""), body: body(fw), wantBytes: fw,
			check: func(t *testing.T, img *firmware.Image, _ map[string]*signing.Key) {
				if !img.Unsigned || img.KeyID != "" || img.Signature != nil || img.SignatureAlg != "" {
					t.Errorf("unsigned upload recorded as %+v", img)
				}
			}},
		{name: "mcuboot version matches", req: req("boot"), body: body(boot), wantBytes: boot,
			check: func(t *testing.T, img *firmware.Image, _ map[string]*signing.Key) {
				if img.MCUboot == nil || !img.MCUboot.HashVerified || img.MCUboot.ImageSize != 100<<10 || img.MCUboot.HeaderSize != 32 {
					t.Errorf("MCUboot info = %+v", img.MCUboot)
				}
			}},

		{name: "wrong signature", req: req("other"), body: body(fw), wantErr: []error{firmware.ErrBadSignature}},
		{name: "untrusted key", req: req("stranger"), body: body(fw), wantErr: []error{firmware.ErrBadSignature}},
		{name: "revoked key", req: req("revoked"), body: body(fw), wantErr: []error{firmware.ErrBadSignature}},
		{name: "revoked KeyID", req: req("revoked", func(r *firmware.UploadRequest) { r.KeyID = "revoked" }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrBadSignature}, wantText: "revoked"},
		{name: "signature by another KeyID", req: req("ed", func(r *firmware.UploadRequest) { r.KeyID = "ec" }), body: body(fw),
			wantErr: []error{firmware.ErrBadSignature}},
		{name: "unknown KeyID", req: req("ed", func(r *firmware.UploadRequest) { r.KeyID = "nope" }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrKeyNotFound}},
		{name: "malformed signature", req: req("ed", func(r *firmware.UploadRequest) { r.Signature = []byte("abc") }), body: body(fw),
			wantErr: []error{firmware.ErrBadSignature}},
		{name: "bad signature with unsigned allowed", cfg: firmware.Config{AllowUnsigned: true}, req: req("other"), body: body(fw),
			wantErr: []error{firmware.ErrBadSignature}},
		{name: "unsigned refused", req: req(""), body: func(context.CancelFunc) io.Reader { return unread{t} },
			wantErr: []error{firmware.ErrUnsigned}},
		{name: "truncated", req: req("ed", func(r *firmware.UploadRequest) { r.Size = int64(len(fw)) + 1 }), body: body(fw),
			wantErr: []error{firmware.ErrTruncated}, wantText: fmt.Sprintf("%d of the %d bytes", len(fw), len(fw)+1)},
		{name: "longer than declared", req: req("ed", func(r *firmware.UploadRequest) { r.Size = int64(len(fw)) - 1 }), body: body(fw),
			wantErr: []error{firmware.ErrInvalid}},
		{name: "hash mismatch", req: req("ed", func(r *firmware.UploadRequest) { r.SHA256 = sha(other) }), body: body(fw),
			wantErr: []error{firmware.ErrHashMismatch}},
		{name: "too large streamed", cfg: firmware.Config{MaxImageSize: 100 << 10}, req: req("ed"), body: body(fw),
			wantErr: []error{firmware.ErrTooLarge}},
		{name: "too large declared", cfg: firmware.Config{MaxImageSize: 100 << 10}, req: req("ed", func(r *firmware.UploadRequest) { r.Size = int64(len(fw)) }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrTooLarge}},
		{name: "reader fails mid-stream", req: req("ed"),
			body:    func(context.CancelFunc) io.Reader { return &errReader{data: fw[:100<<10], err: io.ErrUnexpectedEOF} },
			wantErr: []error{firmware.ErrTruncated, io.ErrUnexpectedEOF}},
		{name: "context cancelled mid-upload", req: req("ed"),
			body: func(cancel context.CancelFunc) io.Reader {
				return &cancelReader{r: bytes.NewReader(fw), cancel: cancel}
			},
			wantErr: []error{context.Canceled}},
		{name: "empty body", cfg: firmware.Config{AllowUnsigned: true}, req: req(""), body: body(nil), wantErr: []error{firmware.ErrInvalid}},
		{name: "mcuboot version mismatch", req: req("boot", func(r *firmware.UploadRequest) { r.Version = "1.2.4" }), body: body(boot),
			wantErr: []error{firmware.ErrInvalid}, wantText: "declared 1.2.4 but the image says 1.2.3"},
		{name: "mcuboot hash mismatch", req: req("bootBad"), body: body(bootBad), wantErr: []error{firmware.ErrInvalid}},
		{name: "empty name", req: req("ed", func(r *firmware.UploadRequest) { r.Name = "" }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrInvalid}},
		{name: "unprintable version", req: req("ed", func(r *firmware.UploadRequest) { r.Version = "1.0\x00" }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrInvalid}},
		{name: "long version", req: req("ed", func(r *firmware.UploadRequest) { r.Version = strings.Repeat("1", 65) }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrInvalid}},
		{name: "too many labels", req: req("ed", func(r *firmware.UploadRequest) {
			r.Labels = map[string]string{}
			for i := range 33 {
				r.Labels[fmt.Sprint("l", i)] = "v"
			}
		}), body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrInvalid}},
		{name: "bad sha256", req: req("ed", func(r *firmware.UploadRequest) { r.SHA256 = "xyz" }),
			body: func(context.CancelFunc) io.Reader { return unread{t} }, wantErr: []error{firmware.ErrInvalid}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{cfg: tc.cfg})
			k := keys.trust(t, e)
			// A baseline image that every refusal must leave alone.
			base, err := e.cat.Upload(context.Background(), firmware.UploadRequest{Name: "base", Version: "0.1",
				Signature: sigs["baseline"], Size: -1}, bytes.NewReader(baseline))
			if err != nil {
				t.Fatalf("baseline upload: %v", err)
			}
			filesBefore, rowsBefore := e.files(t), e.rows(t)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := tc.req
			if r.KeyID != "" && k[r.KeyID] != nil {
				r.KeyID = k[r.KeyID].ID
			}
			img, err := e.cat.Upload(ctx, r, tc.body(cancel))

			if tc.wantErr != nil {
				for _, want := range tc.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("Upload: err = %v, want %v", err, want)
					}
				}
				if err != nil && !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("Upload: err = %v, want it to say %q", err, tc.wantText)
				}
				if img != nil {
					t.Errorf("Upload refused but returned %+v", img)
				}
				// A refused upload changes nothing: the same files and rows as before.
				if got := e.files(t); !slices.Equal(got, filesBefore) {
					t.Errorf("blob files after the refusal = %q, want %q", got, filesBefore)
				}
				if got := e.rows(t); !reflect.DeepEqual(got, rowsBefore) {
					t.Errorf("images after the refusal = %d rows, want only the baseline %s", len(got), base.ID)
				}
				if n := e.counter(t, "lwota_firmware_uploads_total", "result", "ok"); n != 1 {
					t.Errorf("uploads_total{result=ok} = %v, want 1 (the baseline)", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			// The row, as returned and as stored.
			stored, err := e.cat.Image(context.Background(), img.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(stored, img) {
				t.Errorf("stored image differs from the returned one:\n got %+v\nwant %+v", stored, img)
			}
			want := sha(tc.wantBytes)
			if img.SHA256 != want || img.Size != int64(len(tc.wantBytes)) || img.BlobKey != "images/sha256/"+want {
				t.Errorf("image sha256 %s size %d blob %s, want %s %d", img.SHA256, img.Size, img.BlobKey, want, len(tc.wantBytes))
			}
			if img.Name != r.Name || img.Version != r.Version || img.Uploader != "ci" || !img.CreatedAt.Equal(e.now) ||
				img.Target.Model != "S1" || !maps.Equal(img.Labels, r.Labels) || img.ReleaseNotes != r.ReleaseNotes {
				t.Errorf("metadata not kept: %+v", img)
			}
			if r.Signature != nil && !bytes.Equal(img.Signature, r.Signature) {
				t.Errorf("signature not kept")
			}
			// The blob, and only it, was added; its bytes hash right.
			if got := sha(e.blob(t, img.BlobKey)); got != want {
				t.Errorf("blob %s hashes to %s", img.BlobKey, got)
			}
			if got, want := e.files(t), sorted(append(filesBefore, img.BlobKey)); !slices.Equal(got, want) {
				t.Errorf("blob files = %q, want %q", got, want)
			}
			if n := e.counter(t, "lwota_firmware_uploads_total", "result", "ok"); n != 2 {
				t.Errorf("uploads_total{result=ok} = %v, want 2", n)
			}
			if tc.check != nil {
				tc.check(t, img, k)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestUploadNoTrustedKey: a signed upload with no trusted key at all says so.
func TestUploadNoTrustedKey(t *testing.T) {
	kp := newKeyPair(t, signing.Ed25519)
	fw := pseudoRandom(1000, 9)
	e := newEnv(t, envOptions{})
	_, err := e.cat.Upload(context.Background(), firmware.UploadRequest{Name: "n", Version: "1", Signature: kp.sign(t, fw), Size: -1},
		bytes.NewReader(fw))
	if !errors.Is(err, firmware.ErrBadSignature) || !strings.Contains(err.Error(), "no trusted signing key") {
		t.Errorf("Upload with no keys: err = %v, want ErrBadSignature naming the missing key", err)
	}
	if len(e.files(t)) != 0 || len(e.rows(t)) != 0 {
		t.Errorf("refused upload left files %q, rows %d", e.files(t), len(e.rows(t)))
	}
}

// TestUploadSameBytes: the same bytes uploaded twice (here four times at once) are two (four)
// images and one blob; the blob goes with the last of them.
func TestUploadSameBytes(t *testing.T) {
	keys := makeKeys(t)
	e := newEnv(t, envOptions{})
	keys.trust(t, e)
	fw := pseudoRandom(200<<10, 5)
	sig := keys.ec.sign(t, fw)
	ctx := context.Background()

	const n = 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		imgs []*firmware.Image
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := e.cat.Upload(ctx, firmware.UploadRequest{Name: "fw", Version: fmt.Sprint("1.0.", i), Signature: sig, Size: -1},
				bytes.NewReader(fw))
			if err != nil {
				t.Errorf("Upload %d: %v", i, err)
				return
			}
			mu.Lock()
			imgs = append(imgs, img)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(imgs) != n {
		t.Fatalf("%d uploads succeeded, want %d", len(imgs), n)
	}
	key := "images/sha256/" + sha(fw)
	if got := e.files(t); !slices.Equal(got, []string{key}) {
		t.Fatalf("blob files = %q, want only %s", got, key)
	}
	if rows := e.rows(t); len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for i, img := range imgs {
		if img.BlobKey != key {
			t.Errorf("image %s has blob %s", img.ID, img.BlobKey)
		}
		if err := e.cat.Delete(ctx, img.ID); err != nil {
			t.Fatalf("Delete(%s): %v", img.ID, err)
		}
		want := []string{key}
		if i == n-1 {
			want = nil
		}
		if got := e.files(t); !slices.Equal(got, want) {
			t.Errorf("after %d deletes the blob files are %q, want %q", i+1, got, want)
		}
	}
}

// failingStore fails SaveImage: the upload is refused after its blob was renamed into place.
type failingStore struct {
	firmware.Store
}

func (failingStore) SaveImage(context.Context, *firmware.Image) error {
	return errors.New("database on fire")
}

// failingBlobs fails Put or Rename like an S3 that went away, after Put consumed part of the body.
type failingBlobs struct {
	firmware.Blobs
	put, rename bool
}

func (b failingBlobs) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if b.put {
		_, _ = io.CopyN(io.Discard, r, 1000)
		return 0, errors.New("connection refused")
	}
	return b.Blobs.Put(ctx, key, r)
}

func (b failingBlobs) Rename(ctx context.Context, from, to string) error {
	if b.rename {
		return errors.New("503 slow down")
	}
	return b.Blobs.Rename(ctx, from, to)
}

// TestUploadStorageFailures: a blob store or database failure refuses the upload and leaves
// nothing; blob store failures are ErrStorage.
func TestUploadStorageFailures(t *testing.T) {
	kp := newKeyPair(t, signing.ECDSAP256SHA256)
	fw := pseudoRandom(70<<10, 6)
	sig := kp.sign(t, fw)
	tests := []struct {
		name    string
		o       envOptions
		wantErr error
		want    string
	}{
		{"put fails", envOptions{blobs: func(b firmware.Blobs) firmware.Blobs { return failingBlobs{Blobs: b, put: true} }},
			firmware.ErrStorage, "connection refused"},
		{"rename fails", envOptions{blobs: func(b firmware.Blobs) firmware.Blobs { return failingBlobs{Blobs: b, rename: true} }},
			firmware.ErrStorage, "slow down"},
		{"save fails", envOptions{store: func(s firmware.Store) firmware.Store { return failingStore{s} }},
			nil, "database on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.o)
			if _, err := e.cat.AddKey(context.Background(), "k", kp.public); err != nil {
				t.Fatal(err)
			}
			_, err := e.cat.Upload(context.Background(), firmware.UploadRequest{Name: "n", Version: "1", Signature: sig, Size: -1},
				bytes.NewReader(fw))
			if err == nil || !strings.Contains(err.Error(), tc.want) || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Upload: err = %v, want %v saying %q", err, tc.wantErr, tc.want)
			}
			if tc.wantErr == nil && errors.Is(err, firmware.ErrStorage) {
				t.Errorf("a database failure is not a blob store failure: %v", err)
			}
			if files, rows := e.files(t), e.rows(t); len(files) != 0 || len(rows) != 0 {
				t.Errorf("refused upload left files %q and %d rows", files, len(rows))
			}
		})
	}
}
