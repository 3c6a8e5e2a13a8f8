package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/mcuboot"
	"github.com/lwota/lwota/firmware/signing"
)

// RunImages is the contract of firmware.Store: image metadata and trusted signing keys.
func RunImages(t *testing.T, open func(t *testing.T) firmware.Store) {
	parallel(t, "RoundTrip", open, testImageRoundTrip)
	parallel(t, "Minimal", open, testImageMinimal)
	parallel(t, "NotFound", open, testImageNotFound)
	parallel(t, "DuplicateID", open, testImageDuplicateID)
	parallel(t, "Filter", open, testImageFilter)
	parallel(t, "DeleteAndBlobRefs", open, testImageDelete)
	parallel(t, "Concurrent", open, testImageConcurrent)
	parallel(t, "Keys", open, testKeys)
	parallel(t, "KeyFingerprintUnique", open, testKeyFingerprintUnique)
	parallel(t, "Cancelled", open, testImagesCancelled)
	parallel(t, "Edit", open, testImageEdit)
}

// blobKey is the content address of a digest, as the catalog makes it.
func blobKey(sha string) string { return "images/sha256/" + sha }

// digest is a made-up SHA-256 in hex, distinct per n.
func digest(n int) string { return fmt.Sprintf("%064x", n) }

// fullImage sets every field.
func fullImage(id string) *firmware.Image {
	sha := digest(len(id))
	return &firmware.Image{
		ID:      id,
		Name:    "sensor-fw \u2713",
		Version: "2.4.1+build.7",
		Target: firmware.Selector{
			Manufacturer: "Acme", Model: "S1", DeviceType: "sensor",
			Labels: map[string]string{"hw": "rev-c"},
		},
		Size:         123456789,
		SHA256:       sha,
		SignatureAlg: signing.ECDSAP256SHA256,
		KeyID:        "key-1",
		Signature:    []byte{0x30, 0x45, 0, 1, 0xfe, 0xff},
		Uploader:     "ci@example.com",
		CreatedAt:    at(-time.Minute),
		ReleaseNotes: "Fixes the \"sleep\" bug.\nSecond line.",
		Labels:       map[string]string{"channel": "beta", "empty": ""},
		MCUboot: &mcuboot.Info{
			Version: "2.4.1+7", HeaderSize: 32, ImageSize: 123000, LoadAddr: 0x8000, Flags: 0x10,
			HashVerified: true, SignatureTLVs: []string{"ECDSA-P256"},
		},
		BlobKey: blobKey(sha),
	}
}

func normImage(img *firmware.Image) *firmware.Image {
	if img == nil {
		return nil
	}
	c := *img
	c.CreatedAt = utc(c.CreatedAt)
	return &c
}

func checkImage(t *testing.T, what string, got, want *firmware.Image) {
	t.Helper()
	if g, w := normImage(got), normImage(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func mustSaveImage(t *testing.T, s firmware.Store, imgs ...*firmware.Image) {
	t.Helper()
	for _, img := range imgs {
		if err := s.SaveImage(context.Background(), img); err != nil {
			t.Fatalf("SaveImage(%s): %v", img.ID, err)
		}
	}
}

func mustGetImage(t *testing.T, s firmware.Store, id string) *firmware.Image {
	t.Helper()
	img, err := s.GetImage(context.Background(), id)
	if err != nil {
		t.Fatalf("GetImage(%s): %v", id, err)
	}
	return img
}

func imageIDs(imgs []*firmware.Image) []string {
	out := make([]string, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, img.ID)
	}
	return out
}

func mustCount(t *testing.T, s firmware.Store, key string) int {
	t.Helper()
	n, err := s.CountBlobRefs(context.Background(), key)
	if err != nil {
		t.Fatalf("CountBlobRefs(%s): %v", key, err)
	}
	return n
}

func testImageRoundTrip(t *testing.T, s firmware.Store) {
	want := fullImage("01JA0000000000000000000001")
	mustSaveImage(t, s, want)
	checkImage(t, "GetImage", mustGetImage(t, s, want.ID), want)
	list, err := s.ListImages(context.Background(), firmware.ImageFilter{})
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("ListImages returned %d images, want 1", len(list))
	}
	checkImage(t, "ListImages", list[0], want)
}

// testImageMinimal saves images with nothing optional: an unsigned one (nil signature, no key,
// no labels, no MCUboot info) and one with empty, non-nil maps and signature; both come back as
// they went.
func testImageMinimal(t *testing.T, s firmware.Store) {
	for _, want := range []*firmware.Image{
		{ID: "bare", Name: "n", Version: "1", Size: 1, SHA256: digest(1), Unsigned: true, BlobKey: blobKey(digest(1))},
		{ID: "empty", Name: "n", Version: "1", Size: 1, SHA256: digest(2), BlobKey: blobKey(digest(2)),
			Labels: map[string]string{}, Signature: []byte{}, CreatedAt: at(0)},
	} {
		mustSaveImage(t, s, want)
		checkImage(t, want.ID, mustGetImage(t, s, want.ID), want)
	}
}

func testImageNotFound(t *testing.T, s firmware.Store) {
	ctx := context.Background()
	if _, err := s.GetImage(ctx, "nope"); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("GetImage(nope): err = %v, want firmware.ErrNotFound", err)
	}
	if err := s.DeleteImage(ctx, "nope"); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("DeleteImage(nope): err = %v, want firmware.ErrNotFound", err)
	}
	if _, err := s.GetKey(ctx, "nope"); !errors.Is(err, firmware.ErrKeyNotFound) {
		t.Errorf("GetKey(nope): err = %v, want firmware.ErrKeyNotFound", err)
	}
	if n := mustCount(t, s, blobKey(digest(1))); n != 0 {
		t.Errorf("CountBlobRefs on an empty store = %d", n)
	}
	list, err := s.ListImages(ctx, firmware.ImageFilter{})
	if err != nil || len(list) != 0 {
		t.Errorf("ListImages on an empty store = %q, %v; want none", imageIDs(list), err)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Errorf("ListKeys on an empty store = %d keys, %v; want none", len(keys), err)
	}
}

// testImageDuplicateID checks that images are immutable: a second save of an ID fails and the
// first image, labels included, is untouched.
func testImageDuplicateID(t *testing.T, s firmware.Store) {
	first := fullImage("img")
	mustSaveImage(t, s, first)
	second := fullImage("img")
	second.Version = "9.9.9"
	second.Labels = map[string]string{"channel": "stable"}
	if err := s.SaveImage(context.Background(), second); err == nil {
		t.Fatal("SaveImage of an existing ID succeeded, want an error")
	}
	checkImage(t, "after the refused save", mustGetImage(t, s, "img"), first)
	list, err := s.ListImages(context.Background(), firmware.ImageFilter{Labels: map[string]string{"channel": "stable"}})
	if err != nil || len(list) != 0 {
		t.Errorf("labels of the refused save are listed: %q, %v", imageIDs(list), err)
	}
}

func testImageFilter(t *testing.T, s firmware.Store) {
	img := func(id, model, version string, labels map[string]string) *firmware.Image {
		i := fullImage(id)
		i.Target.Model, i.Version, i.Labels = model, version, labels
		return i
	}
	mustSaveImage(t, s,
		img("01", "S1", "1.0.0", map[string]string{"channel": "stable", "region": "eu"}),
		img("02", "S1", "1.0.1", map[string]string{"channel": "beta", "region": "eu"}),
		img("03", "S2", "1.0.0", map[string]string{"channel": "stable"}),
		img("04", "S1", "1.0.0-rc1", nil),
		img("05", "", "1.0.0", map[string]string{"channel": "stable", "region": "us"}),
		img("06", "s1", "1.0", map[string]string{"Channel": "stable"}),
		img("07", "S1", "1.0.0", map[string]string{"channel": "stable%", "region": "eu"}),
	)
	tests := []struct {
		name string
		f    firmware.ImageFilter
		want []string
	}{
		{"all", firmware.ImageFilter{}, []string{"01", "02", "03", "04", "05", "06", "07"}},
		{"model exact", firmware.ImageFilter{Model: "S1"}, []string{"01", "02", "04", "07"}},
		{"model case", firmware.ImageFilter{Model: "s1"}, []string{"06"}},
		{"model none", firmware.ImageFilter{Model: "S"}, nil},
		{"version exact", firmware.ImageFilter{Version: "1.0.0"}, []string{"01", "03", "05", "07"}},
		{"version no prefix", firmware.ImageFilter{Version: "1.0"}, []string{"06"}},
		{"one label", firmware.ImageFilter{Labels: map[string]string{"channel": "stable"}}, []string{"01", "03", "05"}},
		{"every label", firmware.ImageFilter{Labels: map[string]string{"channel": "stable", "region": "eu"}}, []string{"01"}},
		{"label no wildcard", firmware.ImageFilter{Labels: map[string]string{"channel": "stable%"}}, []string{"07"}},
		{"label absent", firmware.ImageFilter{Labels: map[string]string{"nope": ""}}, nil},
		{"combined", firmware.ImageFilter{Model: "S1", Version: "1.0.0", Labels: map[string]string{"region": "eu"}}, []string{"01", "07"}},
		{"after", firmware.ImageFilter{After: "04"}, []string{"05", "06", "07"}},
		{"after missing id", firmware.ImageFilter{After: "045"}, []string{"05", "06", "07"}},
		{"limit", firmware.ImageFilter{Limit: 2}, []string{"01", "02"}},
		{"model after limit", firmware.ImageFilter{Model: "S1", After: "01", Limit: 2}, []string{"02", "04"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListImages(context.Background(), tc.f)
			if err != nil {
				t.Fatalf("ListImages(%+v): %v", tc.f, err)
			}
			if ids := imageIDs(got); !slices.Equal(ids, tc.want) && !(len(ids) == 0 && len(tc.want) == 0) {
				t.Errorf("ListImages(%+v) = %q, want %q", tc.f, ids, tc.want)
			}
		})
	}
	t.Run("paging", func(t *testing.T) {
		var got []string
		f := firmware.ImageFilter{Model: "S1", Limit: 3}
		for range 10 {
			list, err := s.ListImages(context.Background(), f)
			if err != nil {
				t.Fatalf("ListImages(%+v): %v", f, err)
			}
			if len(list) == 0 {
				break
			}
			got = append(got, imageIDs(list)...)
			f.After = list[len(list)-1].ID
		}
		if want := []string{"01", "02", "04", "07"}; !slices.Equal(got, want) {
			t.Errorf("pages of 3 = %q, want %q", got, want)
		}
	})
}

// testImageDelete checks DeleteImage and the blob reference count the catalog relies on to remove
// a blob with its last image.
func testImageDelete(t *testing.T, s firmware.Store) {
	ctx := context.Background()
	a, b, c := fullImage("a"), fullImage("b"), fullImage("c")
	b.BlobKey, c.BlobKey = a.BlobKey, blobKey(digest(99)) // a and b share their bytes
	mustSaveImage(t, s, a, b, c)
	if n := mustCount(t, s, a.BlobKey); n != 2 {
		t.Errorf("CountBlobRefs(shared) = %d, want 2", n)
	}
	if err := s.DeleteImage(ctx, "a"); err != nil {
		t.Fatalf("DeleteImage(a): %v", err)
	}
	if _, err := s.GetImage(ctx, "a"); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("GetImage after DeleteImage: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteImage(ctx, "a"); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("second DeleteImage(a): err = %v, want ErrNotFound", err)
	}
	if n := mustCount(t, s, a.BlobKey); n != 1 {
		t.Errorf("CountBlobRefs(shared) after one delete = %d, want 1", n)
	}
	// The deleted image's labels no longer match; the others' still do.
	list, err := s.ListImages(ctx, firmware.ImageFilter{Labels: map[string]string{"channel": "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if ids := imageIDs(list); !slices.Equal(ids, []string{"b", "c"}) {
		t.Errorf("ListImages(channel=beta) after delete = %q, want [b c]", ids)
	}
	// The ID is free again.
	mustSaveImage(t, s, fullImage("a"))
	if err := s.DeleteImage(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := mustCount(t, s, a.BlobKey); n != 0 {
		t.Errorf("CountBlobRefs(shared) after the last delete = %d, want 0", n)
	}
	if n := mustCount(t, s, c.BlobKey); n != 1 {
		t.Errorf("CountBlobRefs(c) = %d, want 1", n)
	}
}

// testImageConcurrent saves and deletes from many goroutines at once.
func testImageConcurrent(t *testing.T, s firmware.Store) {
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				img := fullImage(fmt.Sprintf("w%02d-%03d", w, i))
				if err := s.SaveImage(context.Background(), img); err != nil {
					errs <- err
				}
				if i%2 == 1 {
					if err := s.DeleteImage(context.Background(), img.ID); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent save or delete: %v", err)
	}
	list, err := s.ListImages(context.Background(), firmware.ImageFilter{Labels: map[string]string{"channel": "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != workers*each/2 {
		t.Errorf("ListImages = %d images, want %d", len(list), workers*each/2)
	}
}

// key returns a trusted key; the fingerprint is distinct per id.
func key(id string, created time.Time) *signing.Key {
	return &signing.Key{
		ID: id, Name: "release " + id, Algorithm: signing.Ed25519,
		PublicKeyPEM: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA" + id + "\n-----END PUBLIC KEY-----\n",
		Fingerprint:  fmt.Sprintf("%064x", []byte(id)), CreatedAt: created,
	}
}

func checkKey(t *testing.T, what string, got, want *signing.Key) {
	t.Helper()
	g, w := *got, *want
	g.CreatedAt, g.RevokedAt = utc(g.CreatedAt), utc(g.RevokedAt)
	w.CreatedAt, w.RevokedAt = utc(w.CreatedAt), utc(w.RevokedAt)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func testKeys(t *testing.T, s firmware.Store) {
	ctx := context.Background()
	k1, k2, k3 := key("k1", at(time.Second)), key("k2", at(0)), key("k3", at(2*time.Second))
	k3.Algorithm = signing.ECDSAP256SHA256
	for _, k := range []*signing.Key{k1, k2, k3} {
		if err := s.SaveKey(ctx, k); err != nil {
			t.Fatalf("SaveKey(%s): %v", k.ID, err)
		}
	}
	got, err := s.GetKey(ctx, "k3")
	if err != nil {
		t.Fatalf("GetKey(k3): %v", err)
	}
	checkKey(t, "GetKey(k3)", got, k3)

	// A revocation is a save of the same ID; the key stays listed.
	revoked := *k1
	revoked.RevokedAt = at(time.Hour)
	if err := s.SaveKey(ctx, &revoked); err != nil {
		t.Fatalf("SaveKey(revoked k1): %v", err)
	}
	got, err = s.GetKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	checkKey(t, "GetKey(k1) after revocation", got, &revoked)
	if !got.Revoked() {
		t.Error("k1 is not revoked after the save")
	}

	list, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	if len(list) != 3 {
		t.Fatalf("ListKeys returned %d keys, want 3", len(list))
	}
	for i, want := range []*signing.Key{k2, &revoked, k3} { // oldest first
		checkKey(t, fmt.Sprintf("ListKeys[%d]", i), list[i], want)
	}
}

func testKeyFingerprintUnique(t *testing.T, s firmware.Store) {
	ctx := context.Background()
	k := key("k1", at(0))
	if err := s.SaveKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	dup := key("other", at(time.Second))
	dup.Fingerprint = k.Fingerprint
	if err := s.SaveKey(ctx, dup); err == nil {
		t.Error("SaveKey of a second ID with the same fingerprint succeeded")
	}
	if _, err := s.GetKey(ctx, "other"); !errors.Is(err, firmware.ErrKeyNotFound) {
		t.Errorf("GetKey(other) after the refused save: err = %v, want ErrKeyNotFound", err)
	}
}

func testImagesCancelled(t *testing.T, s firmware.Store) {
	ctx := cancelled()
	wantCanceled(t, "SaveImage", s.SaveImage(ctx, fullImage("late")))
	_, err := s.GetImage(ctx, "late")
	wantCanceled(t, "GetImage", err)
	_, err = s.ListImages(ctx, firmware.ImageFilter{})
	wantCanceled(t, "ListImages", err)
	wantCanceled(t, "DeleteImage", s.DeleteImage(ctx, "late"))
	_, err = s.CountBlobRefs(ctx, "k")
	wantCanceled(t, "CountBlobRefs", err)
	wantCanceled(t, "SaveKey", s.SaveKey(ctx, key("late", at(0))))
	_, err = s.GetKey(ctx, "late")
	wantCanceled(t, "GetKey", err)
	_, err = s.ListKeys(ctx)
	wantCanceled(t, "ListKeys", err)
	if _, err := s.GetImage(context.Background(), "late"); !errors.Is(err, firmware.ErrNotFound) {
		t.Errorf("the cancelled SaveImage happened: GetImage err = %v", err)
	}
}

// testImageEdit: release notes and metadata change, alone or together, and nothing else does.
func testImageEdit(t *testing.T, s firmware.Store) {
	ctx := context.Background()
	img := fullImage("img-edit")
	img.Metadata = map[string]string{"ticket": "FW-1", "branch": "main"}
	mustSaveImage(t, s, img)
	checkImage(t, "saved", mustGetImage(t, s, img.ID), img)

	notes := "New notes \u2713"
	if err := s.EditImage(ctx, img.ID, firmware.ImageEdit{ReleaseNotes: &notes}); err != nil {
		t.Fatalf("EditImage(notes): %v", err)
	}
	img.ReleaseNotes = notes
	checkImage(t, "after the notes", mustGetImage(t, s, img.ID), img)

	meta := map[string]string{"ticket": "FW-2", "empty": ""}
	if err := s.EditImage(ctx, img.ID, firmware.ImageEdit{Metadata: meta}); err != nil {
		t.Fatalf("EditImage(metadata): %v", err)
	}
	img.Metadata = meta
	checkImage(t, "after the metadata", mustGetImage(t, s, img.ID), img)

	empty := ""
	if err := s.EditImage(ctx, img.ID, firmware.ImageEdit{ReleaseNotes: &empty, Metadata: map[string]string{}}); err != nil {
		t.Fatalf("EditImage(clear): %v", err)
	}
	img.ReleaseNotes, img.Metadata = "", nil
	checkImage(t, "after clearing", mustGetImage(t, s, img.ID), img)

	for _, e := range []firmware.ImageEdit{{ReleaseNotes: &notes}, {}} {
		if err := s.EditImage(ctx, "img-missing", e); !errors.Is(err, firmware.ErrNotFound) {
			t.Errorf("EditImage(missing, %+v) = %v, want ErrNotFound", e, err)
		}
	}
}
