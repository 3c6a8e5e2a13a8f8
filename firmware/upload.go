package firmware

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lwota/lwota/firmware/signing"
)

// Bounds of an upload's metadata; anything longer is ErrInvalid.
const (
	maxNameLen         = 128
	maxVersionLen      = 64
	maxSelectorLen     = 128 // each of Manufacturer, Model, DeviceType
	maxLabels          = 32  // per map: Labels and Target.Labels
	maxLabelNameLen    = 63
	maxLabelValueLen   = 255
	maxReleaseNotesLen = 64 << 10
	maxMetadata        = 64 // keys of Image.Metadata
	maxMetadataKeyLen  = 63
	maxMetadataValLen  = 1024
	maxUploaderLen     = 256
	maxKeyIDLen        = 128
	maxSignatureLen    = 1024 // an Ed25519 signature is 64 bytes, a DER ECDSA P-256 one at most 72
)

// peekSize is how much of the body is looked at before streaming, to recognize an MCUboot image
// by its header.
const peekSize = 32

// Upload verifies an image while streaming body into the blob store, then records it. Nothing
// unverified is ever recorded, and a refused upload changes nothing: no row, no blob, no
// temporary object. The errors, in the order they are checked:
//
//   - ErrInvalid, ErrTooLarge: bad metadata, or a declared Size over MaxImageSize (body unread);
//   - ErrUnsigned: no signature while unsigned uploads are not allowed (body unread);
//   - ErrKeyNotFound, ErrBadSignature: KeyID names no key, or a revoked one; no trusted key at all;
//   - ErrTooLarge: the body exceeds MaxImageSize (reading stops there);
//   - ErrTruncated: the body ends short of the declared Size, or reading it failed;
//   - ErrInvalid: the body is longer than the declared Size, empty, or a bad MCUboot image
//     (malformed, hash TLV mismatch, embedded version not the declared one);
//   - ErrHashMismatch: the bytes do not hash to the client's SHA256;
//   - ErrBadSignature: no trusted key verifies the signature over the bytes;
//   - ErrStorage: the blob store failed (a 5xx);
//   - the context's error when ctx ended.
func (c *Catalog) Upload(ctx context.Context, req UploadRequest, body io.Reader) (*Image, error) {
	start := time.Now()
	img, n, err := c.upload(ctx, &req, body)
	took := time.Since(start)
	c.m.upload(err, n, took)
	if err != nil {
		err = fmt.Errorf("upload %s %s: %w", req.Name, req.Version, err)
		c.log.WarnContext(ctx, "image upload refused", "name", req.Name, "version", req.Version,
			"uploader", req.Uploader, "bytes", n, "duration", took, "result", resultLabel(err), "err", err)
		return nil, err
	}
	c.log.InfoContext(ctx, "image uploaded", "id", img.ID, "name", img.Name, "version", img.Version,
		"size", img.Size, "sha256", img.SHA256, "key", img.KeyID, "unsigned", img.Unsigned,
		"mcuboot", img.MCUboot != nil, "uploader", img.Uploader, "duration", took)
	return img, nil
}

// upload is Upload without the metrics and the log line; n is the bytes read from body.
func (c *Catalog) upload(ctx context.Context, req *UploadRequest, body io.Reader) (img *Image, n int64, err error) {
	if err := c.checkRequest(req); err != nil {
		return nil, 0, err
	}
	var v sigVerifier
	if len(req.Signature) > 0 {
		if v, err = c.verifier(ctx, req); err != nil {
			return nil, 0, err
		}
	}

	// One pass over the body: limit, hash, verifier and MCUboot parser see the bytes on their way
	// into a temporary blob.
	br := bufio.NewReaderSize(body, 64<<10)
	s := &uploadStream{ctx: ctx, r: br, max: c.cfg.MaxImageSize, declared: req.Size, sum: sha256.New()}
	if v != nil {
		s.sinks = append(s.sinks, v)
	}
	var boot bootParser
	// A short body or a read error shows in the prefix's length; the error itself comes back
	// from the stream's first Read.
	if prefix, _ := br.Peek(peekSize); detectMCUboot(prefix) {
		boot = newBootParser()
		s.sinks = append(s.sinks, boot)
	}
	tmp := c.cfg.TempPrefix + c.ids.next(c.now())
	_, putErr := c.blobs.Put(ctx, tmp, s)
	refuse := func(err error) (*Image, int64, error) {
		c.removeTemp(ctx, tmp)
		return nil, s.n, err
	}
	switch {
	case s.err != nil:
		return refuse(s.err)
	case putErr != nil:
		return refuse(storageErr(ctx, putErr))
	}

	// Every check on the whole stream.
	if s.n == 0 {
		return refuse(fmt.Errorf("%w: empty image", ErrInvalid))
	}
	if req.Size > 0 && s.n < req.Size {
		return refuse(fmt.Errorf("%w: %d of the %d bytes declared", ErrTruncated, s.n, req.Size))
	}
	sum := hex.EncodeToString(s.sum.Sum(nil))
	if req.SHA256 != "" && !strings.EqualFold(req.SHA256, sum) {
		return refuse(fmt.Errorf("%w: the client expects %s, the bytes hash to %s", ErrHashMismatch, strings.ToLower(req.SHA256), sum))
	}
	img = &Image{
		Name:         req.Name,
		Version:      req.Version,
		Target:       req.Target,
		Size:         s.n,
		SHA256:       sum,
		Uploader:     req.Uploader,
		ReleaseNotes: req.ReleaseNotes,
		Labels:       req.Labels,
		Metadata:     req.Metadata,
		BlobKey:      blobPrefix + sum,
	}
	if v != nil {
		k, err := v.Verify()
		if err != nil {
			return refuse(badSignature(err))
		}
		img.SignatureAlg, img.KeyID, img.Signature = k.Algorithm, k.ID, req.Signature
	} else {
		img.Unsigned = true
	}
	if boot != nil {
		info, err := boot.Result()
		if err != nil {
			return refuse(fmt.Errorf("%w: MCUboot image: %w", ErrInvalid, err))
		}
		if !bootVersionMatches(info, req.Version) {
			return refuse(fmt.Errorf("%w: declared %s but the image says %s", ErrInvalid, req.Version, info.Version))
		}
		img.MCUboot = info
	}
	if err := c.finish(ctx, tmp, img); err != nil {
		return nil, s.n, err
	}
	return img, s.n, nil
}

// finish moves the verified temporary blob to its content address (or drops it when those bytes
// are already stored) and records the image. It holds the blob key's lock, so that a Delete of
// the last image with the same bytes cannot remove them in between. Every byte is verified by
// now, so it runs to the end even if the client goes away (bounded by cleanupTimeout): a save
// that the caller's cancellation interrupted could still commit, and leave an image the caller
// was told had failed.
func (c *Catalog) finish(ctx context.Context, tmp string, img *Image) error {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	unlock := c.locks.lock(img.BlobKey)
	defer unlock()
	exists, err := c.blobs.Exists(ctx, img.BlobKey)
	if err != nil {
		c.removeTemp(ctx, tmp)
		return storageErr(ctx, err)
	}
	if exists {
		c.removeTemp(ctx, tmp)
	} else if err := c.blobs.Rename(ctx, tmp, img.BlobKey); err != nil {
		c.removeTemp(ctx, tmp)
		return storageErr(ctx, err)
	}
	img.CreatedAt = c.now()
	img.ID = c.ids.next(img.CreatedAt)
	if err := c.store.SaveImage(ctx, img); err != nil {
		// Unless another image has these bytes, they go too: the upload left nothing.
		if refs, cerr := c.store.CountBlobRefs(ctx, img.BlobKey); cerr != nil {
			c.log.WarnContext(ctx, "refused upload left its blob: cannot count references", "blob", img.BlobKey, "err", cerr)
		} else if refs == 0 {
			if derr := c.blobs.Delete(ctx, img.BlobKey); derr != nil {
				c.log.WarnContext(ctx, "refused upload left its blob", "blob", img.BlobKey, "err", derr)
			}
		}
		return fmt.Errorf("save image: %w", err)
	}
	return nil
}

// removeTemp deletes an upload's temporary blob, also when ctx has ended. Put removes what it
// wrote when it fails, so this is for the uploads refused after their bytes were stored; a
// failure is logged, since the refusal is the caller's answer.
func (c *Catalog) removeTemp(ctx context.Context, key string) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	exists, err := c.blobs.Exists(ctx, key)
	if err == nil && !exists {
		return
	}
	if err == nil {
		err = c.blobs.Delete(ctx, key)
	}
	if err != nil {
		c.log.WarnContext(ctx, "cannot remove a refused upload's temporary blob", "blob", key, "err", err)
	}
}

// verifier builds the signature check: against KeyID's key when the request names one, else
// against every trusted (non-revoked) key.
func (c *Catalog) verifier(ctx context.Context, req *UploadRequest) (sigVerifier, error) {
	var keys []*signing.Key
	if req.KeyID != "" {
		k, err := c.store.GetKey(ctx, req.KeyID)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", req.KeyID, err)
		}
		if k.Revoked() {
			return nil, fmt.Errorf("%w: key %s (%s) was revoked at %s", ErrBadSignature, k.ID, k.Name,
				k.RevokedAt.UTC().Format(time.RFC3339))
		}
		keys = []*signing.Key{k}
	} else {
		all, err := c.store.ListKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		for _, k := range all {
			if !k.Revoked() {
				keys = append(keys, k)
			}
		}
	}
	v, err := newVerifier(req.Signature, keys)
	if err != nil {
		return nil, badSignature(err)
	}
	return v, nil
}

// badSignature wraps a signing error as ErrBadSignature, keeping both for errors.Is.
func badSignature(err error) error {
	if errors.Is(err, errNoKey) {
		return fmt.Errorf("%w: no trusted signing key to verify it with (add one): %w", ErrBadSignature, err)
	}
	return fmt.Errorf("%w: %w", ErrBadSignature, err)
}

// checkRequest validates the metadata before a byte of the body is read.
func (c *Catalog) checkRequest(req *UploadRequest) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if err := checkText("name", req.Name, maxNameLen, false); err != nil {
		return invalid("%v", err)
	}
	if err := checkText("version", req.Version, maxVersionLen, false); err != nil {
		return invalid("%v", err)
	}
	if strings.ContainsFunc(req.Version, unicode.IsSpace) {
		return invalid("version %q contains white space", req.Version)
	}
	for _, f := range []struct{ what, v string }{
		{"target manufacturer", req.Target.Manufacturer}, {"target model", req.Target.Model},
		{"target device type", req.Target.DeviceType}, {"uploader", req.Uploader}, {"key id", req.KeyID},
	} {
		if f.v == "" {
			continue
		}
		limit := maxSelectorLen
		switch f.what {
		case "uploader":
			limit = maxUploaderLen
		case "key id":
			limit = maxKeyIDLen
		}
		if err := checkText(f.what, f.v, limit, false); err != nil {
			return invalid("%v", err)
		}
	}
	if err := checkLabels("label", req.Labels); err != nil {
		return invalid("%v", err)
	}
	if err := checkLabels("target label", req.Target.Labels); err != nil {
		return invalid("%v", err)
	}
	if err := checkInfo(ImageEdit{ReleaseNotes: &req.ReleaseNotes, Metadata: req.Metadata}); err != nil {
		return err
	}
	if req.SHA256 != "" {
		if b, err := hex.DecodeString(req.SHA256); err != nil || len(b) != sha256.Size {
			return invalid("sha256 %q is not 64 hex digits", req.SHA256)
		}
	}
	if len(req.Signature) > maxSignatureLen {
		return invalid("signature of %d bytes (at most %d)", len(req.Signature), maxSignatureLen)
	}
	if req.Size > c.cfg.MaxImageSize {
		return fmt.Errorf("%w: %d bytes declared, at most %d accepted", ErrTooLarge, req.Size, c.cfg.MaxImageSize)
	}
	if len(req.Signature) == 0 && !c.cfg.AllowUnsigned {
		return fmt.Errorf("%w: the upload has no signature", ErrUnsigned)
	}
	return nil
}

// checkText accepts non-empty, valid UTF-8 of at most limit bytes made of printable characters
// (and line breaks and tabs when multiline).
func checkText(what, s string, limit int, multiline bool) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > limit:
		return fmt.Errorf("%s is %d bytes long (at most %d)", what, len(s), limit)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsPrint(r) || multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		return fmt.Errorf("%s %q contains the unprintable %U", what, s, r)
	}
	return nil
}

func checkLabels(what string, labels map[string]string) error {
	return checkMap(what, what+"s", "name", labels, maxLabels, maxLabelNameLen, maxLabelValueLen)
}

// checkInfo checks the release notes and metadata of an upload or an edit: ErrInvalid.
func checkInfo(e ImageEdit) error {
	if e.ReleaseNotes != nil && *e.ReleaseNotes != "" {
		if err := checkText("release notes", *e.ReleaseNotes, maxReleaseNotesLen, true); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if err := checkMap("metadata", "metadata keys", "key", e.Metadata, maxMetadata, maxMetadataKeyLen, maxMetadataValLen); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// checkMap bounds a map of text: at most n entries, printable keys of at most keyLen bytes and
// printable values (or empty ones) of at most valLen.
func checkMap(what, many, keyWord string, m map[string]string, n, keyLen, valLen int) error {
	if len(m) > n {
		return fmt.Errorf("%d %s (at most %d)", len(m), many, n)
	}
	for k, v := range m {
		if err := checkText(what+" "+keyWord, k, keyLen, false); err != nil {
			return err
		}
		if v == "" {
			continue
		}
		if err := checkText(what+" "+k, v, valLen, false); err != nil {
			return err
		}
	}
	return nil
}

// uploadStream is the body on its way to the blob store: it counts and bounds the bytes, hashes
// them and hands them to the signature verifier and the MCUboot parser. Its first failure is
// sticky, and it is the upload's answer even though the blob store sees it only as a read error.
type uploadStream struct {
	ctx      context.Context
	r        io.Reader
	max      int64 // MaxImageSize
	declared int64 // the request's Size; <= 0: unknown
	sum      hash.Hash
	sinks    []io.Writer // verifier, parser
	n        int64
	err      error
}

func (s *uploadStream) fail(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: reading the upload after %d bytes: %w", ErrTruncated, s.n, err)
	}
}

func (s *uploadStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if n > 0 {
		s.n += int64(n)
		switch {
		case s.n > s.max:
			s.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.max)
		case s.declared > 0 && s.n > s.declared:
			s.err = fmt.Errorf("%w: the body is longer than the %d bytes declared", ErrInvalid, s.declared)
		}
		if s.err != nil {
			return 0, s.err
		}
		s.sum.Write(p[:n])
		for _, w := range s.sinks {
			if _, werr := w.Write(p[:n]); werr != nil {
				s.err = fmt.Errorf("%w: %w", ErrInvalid, werr)
				return 0, s.err
			}
		}
	}
	switch {
	case err == nil, err == io.EOF:
		return n, err
	case errors.Is(err, s.ctx.Err()) && s.ctx.Err() != nil:
		s.err = err
	default:
		s.fail(err)
	}
	return n, s.err
}
