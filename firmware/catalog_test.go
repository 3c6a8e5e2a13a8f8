package firmware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
	"github.com/lwota/lwota/storage/blobstore"
)

// usage is a UsageChecker over a set of image IDs.
type usage struct {
	mu   sync.Mutex
	used map[string]bool
	err  error
}

func (u *usage) ImageInUse(_ context.Context, id string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.used[id], u.err
}

func (u *usage) set(id string, used bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.used[id] = used
}

// uploadUnsigned uploads data on an env with unsigned uploads allowed.
func uploadUnsigned(t *testing.T, e *env, r firmware.UploadRequest, data []byte) *firmware.Image {
	t.Helper()
	if r.Name == "" {
		r.Name = "fw"
	}
	if r.Version == "" {
		r.Version = "1.0.0"
	}
	r.Size = int64(len(data))
	img, err := e.cat.Upload(context.Background(), r, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Upload(%s %s): %v", r.Name, r.Version, err)
	}
	return img
}

func TestDelete(t *testing.T) {
	u := &usage{used: map[string]bool{}}
	e := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true}, usage: u})
	ctx := context.Background()
	a := uploadUnsigned(t, e, firmware.UploadRequest{Version: "1"}, []byte("shared bytes"))
	b := uploadUnsigned(t, e, firmware.UploadRequest{Version: "2"}, []byte("shared bytes"))
	c := uploadUnsigned(t, e, firmware.UploadRequest{Version: "3"}, []byte("own bytes"))
	all := []string{a.BlobKey, c.BlobKey}
	slices.Sort(all)

	u.set(a.ID, true)
	if err := e.cat.Delete(ctx, a.ID); !errors.Is(err, firmware.ErrInUse) {
		t.Errorf("Delete of an image in use: err = %v, want ErrInUse", err)
	}
	if len(e.rows(t)) != 3 || !slices.Equal(e.files(t), all) {
		t.Errorf("refused Delete changed something: %d rows, files %q", len(e.rows(t)), e.files(t))
	}
	u.err = errors.New("campaigns unavailable")
	if err := e.cat.Delete(ctx, b.ID); err == nil || !strings.Contains(err.Error(), "campaigns unavailable") {
		t.Errorf("Delete with a failing usage check: err = %v", err)
	}
	u.err = nil
	u.set(a.ID, false)

	// Shared bytes stay until their last image goes.
	if err := e.cat.Delete(ctx, a.ID); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	if !slices.Equal(e.files(t), all) {
		t.Errorf("after deleting one of two images with the same bytes: files %q, want %q", e.files(t), all)
	}
	if err := e.cat.Delete(ctx, a.ID); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("second Delete(a): err = %v, want ErrNotFound", err)
	}
	if err := e.cat.Delete(ctx, b.ID); err != nil {
		t.Fatalf("Delete(b): %v", err)
	}
	if got := e.files(t); !slices.Equal(got, []string{c.BlobKey}) {
		t.Errorf("after deleting both: files %q, want only %s", got, c.BlobKey)
	}
	if _, err := e.cat.Image(ctx, b.ID); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("Image(deleted): err = %v, want ErrNotFound", err)
	}
	// A nil UsageChecker: nothing is in use.
	e2 := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true}})
	d := uploadUnsigned(t, e2, firmware.UploadRequest{}, []byte("x"))
	if err := e2.cat.Delete(ctx, d.ID); err != nil || len(e2.files(t)) != 0 {
		t.Errorf("Delete without a usage checker: %v, files %q", err, e2.files(t))
	}
}

func TestOpen(t *testing.T) {
	e := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true}})
	data := pseudoRandom(10000, 7)
	img := uploadUnsigned(t, e, firmware.UploadRequest{}, data)
	tests := []struct {
		offset, length int64
		want           []byte
		wantErr        error
	}{
		{0, -1, data, nil},
		{0, 1024, data[:1024], nil},
		{1024, 1024, data[1024:2048], nil},
		{9000, -1, data[9000:], nil},
		{9000, 5000, data[9000:], nil}, // cut at the end
		{10000, -1, nil, nil},          // at the end: empty
		{10001, -1, nil, firmware.ErrInvalid},
		{-1, 10, nil, firmware.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d+%d", tc.offset, tc.length), func(t *testing.T) {
			rc, got, err := e.cat.Open(context.Background(), img.ID, tc.offset, tc.length)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Open: err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tc.want) || got.ID != img.ID {
				t.Errorf("Open read %d bytes of image %s, want %d", len(b), got.ID, len(tc.want))
			}
		})
	}
	if _, _, err := e.cat.Open(context.Background(), "nope", 0, -1); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("Open(nope): err = %v, want ErrNotFound", err)
	}
}

// notPresigner hides the directory store's PresignGet.
type notPresigner struct{ firmware.Blobs }

func TestDownloadURL(t *testing.T) {
	signer, err := blobstore.NewURLSigner("https://fw.example.com/dl", []byte("0123456789abcdef0123456789abcdef"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true}, signer: signer})
	img := uploadUnsigned(t, e, firmware.UploadRequest{}, []byte("bytes"))
	u, err := e.cat.DownloadURL(context.Background(), img.ID, time.Minute)
	if err != nil {
		t.Fatalf("DownloadURL: %v", err)
	}
	if !strings.HasPrefix(u, "https://fw.example.com/dl/") || !strings.Contains(u, strings.TrimPrefix(img.BlobKey, "images/")) {
		t.Errorf("DownloadURL = %s, want a URL under the signer's base naming the blob", u)
	}
	if _, err := e.cat.DownloadURL(context.Background(), "nope", time.Minute); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("DownloadURL(nope): err = %v, want ErrNotFound", err)
	}

	plain := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true},
		blobs: func(b firmware.Blobs) firmware.Blobs { return notPresigner{b} }})
	img = uploadUnsigned(t, plain, firmware.UploadRequest{}, []byte("bytes"))
	if _, err := plain.cat.DownloadURL(context.Background(), img.ID, time.Minute); !errors.Is(err, firmware.ErrNoDownloadURL) {
		t.Errorf("DownloadURL without a Presigner: err = %v, want ErrNoDownloadURL", err)
	}
}

func TestImages(t *testing.T) {
	e := newEnv(t, envOptions{cfg: firmware.Config{AllowUnsigned: true}})
	var ids []string
	for i, m := range []struct {
		model, version string
		labels         map[string]string
	}{
		{"S1", "1.0.0", map[string]string{"channel": "stable", "site": "a"}},
		{"S2", "1.0.0", map[string]string{"channel": "stable"}},
		{"S1", "1.1.0", map[string]string{"channel": "beta", "site": "a"}},
		{"S1", "1.0.0", map[string]string{"channel": "stable", "site": "b"}},
	} {
		img := uploadUnsigned(t, e, firmware.UploadRequest{Version: m.version, Target: firmware.Selector{Model: m.model}, Labels: m.labels},
			[]byte(fmt.Sprint("image ", i)))
		ids = append(ids, img.ID)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("IDs are not in upload order: %q", ids)
	}
	tests := []struct {
		name string
		f    firmware.ImageFilter
		want []int
	}{
		{"all", firmware.ImageFilter{}, []int{0, 1, 2, 3}},
		{"model", firmware.ImageFilter{Model: "S1"}, []int{0, 2, 3}},
		{"version", firmware.ImageFilter{Version: "1.0.0"}, []int{0, 1, 3}},
		{"version is exact", firmware.ImageFilter{Version: "1.0"}, nil},
		{"labels", firmware.ImageFilter{Labels: map[string]string{"channel": "stable", "site": "a"}}, []int{0}},
		{"model and label", firmware.ImageFilter{Model: "S1", Labels: map[string]string{"site": "a"}}, []int{0, 2}},
		{"page", firmware.ImageFilter{After: ids[0], Limit: 2}, []int{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.cat.Images(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var want, gotIDs []string
			for _, i := range tc.want {
				want = append(want, ids[i])
			}
			for _, img := range got {
				gotIDs = append(gotIDs, img.ID)
			}
			if !slices.Equal(gotIDs, want) {
				t.Errorf("Images(%+v) = %q, want %q", tc.f, gotIDs, want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	ed, ec := newKeyPair(t, signing.Ed25519), newKeyPair(t, signing.ECDSAP256SHA256)
	e := newEnv(t, envOptions{})
	ctx := context.Background()

	k1, err := e.cat.AddKey(ctx, "release", ed.public)
	if err != nil {
		t.Fatalf("AddKey(ed25519): %v", err)
	}
	if k1.ID == "" || k1.Algorithm != signing.Ed25519 || k1.Name != "release" || len(k1.Fingerprint) != 64 || !k1.CreatedAt.Equal(e.now) {
		t.Errorf("AddKey(ed25519) = %+v", k1)
	}
	e.now = e.now.Add(time.Minute) // Keys lists oldest first
	k2, err := e.cat.AddKey(ctx, "ci", ec.public)
	if err != nil || k2.Algorithm != signing.ECDSAP256SHA256 {
		t.Fatalf("AddKey(ecdsa) = %+v, %v", k2, err)
	}
	// The same key again, under any name: the existing one, unchanged.
	again, err := e.cat.AddKey(ctx, "release again", ed.public)
	if err != nil || again.ID != k1.ID || again.Name != "release" || !again.CreatedAt.Equal(k1.CreatedAt) {
		t.Errorf("AddKey of a trusted key = %+v, %v; want the existing %s", again, err, k1.ID)
	}
	for name, pem := range map[string][]byte{
		"garbage":     []byte("not a key"),
		"private key": mustRead(t, ed.private),
		"rsa":         openssl(t, "pkey", "-pubout", "-in", rsaKey(t)),
	} {
		if _, err := e.cat.AddKey(ctx, name, pem); !errors.Is(err, firmware.ErrInvalid) {
			t.Errorf("AddKey(%s): err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.cat.AddKey(ctx, "", ec.public); !errors.Is(err, firmware.ErrInvalid) {
		t.Errorf("AddKey without a name: err = %v, want ErrInvalid", err)
	}

	e.now = e.now.Add(time.Hour)
	r, err := e.cat.RevokeKey(ctx, k1.ID)
	if err != nil || !r.Revoked() || !r.RevokedAt.Equal(e.now) {
		t.Fatalf("RevokeKey = %+v, %v", r, err)
	}
	e.now = e.now.Add(time.Hour)
	r2, err := e.cat.RevokeKey(ctx, k1.ID)
	if err != nil || !r2.RevokedAt.Equal(r.RevokedAt) {
		t.Errorf("second RevokeKey = %+v, %v; want the first revocation kept", r2, err)
	}
	if _, err := e.cat.RevokeKey(ctx, "nope"); !errors.Is(err, firmware.ErrKeyNotFound) {
		t.Errorf("RevokeKey(nope): err = %v, want ErrKeyNotFound", err)
	}
	if _, err := e.cat.AddKey(ctx, "back", ed.public); !errors.Is(err, firmware.ErrInvalid) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("AddKey of a revoked key: err = %v, want ErrInvalid saying it was revoked", err)
	}
	keys, err := e.cat.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != k1.ID || !keys[0].Revoked() || keys[1].ID != k2.ID || keys[1].Revoked() {
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		t.Errorf("Keys = %q, want the revoked %s then %s", ids, k1.ID, k2.ID)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rsaKey(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/rsa.pem"
	openssl(t, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p)
	return p
}
