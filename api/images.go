package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

// Images is the firmware catalog as the API needs it (firmware.Catalog implements it).
type Images interface {
	// Upload verifies body against req while streaming it into the catalog.
	Upload(ctx context.Context, req firmware.UploadRequest, body io.Reader) (*firmware.Image, error)
	Image(ctx context.Context, id string) (*firmware.Image, error)
	Images(ctx context.Context, f firmware.ImageFilter) ([]*firmware.Image, error)
	Delete(ctx context.Context, id string) error
	// Open reads length bytes of the image from offset (length < 0: to the end).
	Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, *firmware.Image, error)
	AddKey(ctx context.Context, name string, pem []byte) (*signing.Key, error)
	Keys(ctx context.Context) ([]*signing.Key, error)
	RevokeKey(ctx context.Context, id string) (*signing.Key, error)
}

// DefaultMaxImageBytes caps image uploads when WithImages is given no maximum.
const DefaultMaxImageBytes = 64 << 20

// maxSignatureBytes caps the signature part; real ones are 64 (Ed25519) to 72 (ECDSA DER) bytes.
const maxSignatureBytes = 64 << 10

// Headers of the raw-body upload (Content-Type: application/octet-stream). Text values are UTF-8,
// percent-decoded (RFC 3986: "%20" is a space, "+" stays a plus), so plain ASCII without "%" needs
// no encoding.
const (
	HeaderName          = "X-Lwota-Name"
	HeaderVersion       = "X-Lwota-Version"
	HeaderManufacturer  = "X-Lwota-Manufacturer"
	HeaderModel         = "X-Lwota-Model"
	HeaderDeviceType    = "X-Lwota-Device-Type"
	HeaderTargetLabels  = "X-Lwota-Target-Labels" // k=v,k=v: device labels the image is meant for
	HeaderLabels        = "X-Lwota-Labels"        // k=v,k=v: the image's own labels
	HeaderReleaseNotes  = "X-Lwota-Release-Notes"
	HeaderMetadata      = "X-Lwota-Metadata"  // k=v,k=v: the image's metadata (shown, never matched)
	HeaderSignature     = "X-Lwota-Signature" // base64 of the detached signature
	HeaderKeyID         = "X-Lwota-Key-Id"
	HeaderSHA256        = "X-Lwota-Sha256" // hex digest the server must find
	HeaderUploader      = "X-Lwota-Uploader"
	imagesPath          = Prefix + "/images"
	mimeOctetStream     = "application/octet-stream"
	mimeMultipartFormDT = "multipart/form-data"
)

// WithImages serves the firmware image and signing-key routes from images, with image uploads capped
// at maxUpload bytes (0 or less: DefaultMaxImageBytes). Call it before serving. Without it those routes
// answer 404 not_found.
func (a *API) WithImages(images Images, maxUpload int64) *API {
	if maxUpload <= 0 {
		maxUpload = DefaultMaxImageBytes
	}
	a.images = images
	a.maxUpload = maxUpload
	return a
}

func (a *API) imageRoutes(e *echo.Echo) {
	e.POST(imagesPath, a.uploadImage)
	e.GET(imagesPath, a.listImages)
	e.GET(imagesPath+"/:id", a.getImage)
	e.GET(imagesPath+"/:id/content", a.getImageContent)
	e.DELETE(imagesPath+"/:id", a.deleteImage)
	e.PATCH(imagesPath+"/:id", a.editImage) // image_detail.go
}

// limitBodies is limitBody for every route but the image upload, which uploadImage caps itself.
func (a *API) limitBodies(next echo.HandlerFunc) echo.HandlerFunc {
	limited := a.limitBody(next, a.cfg.MaxBodyBytes)
	bulk := a.limitBody(next, a.cfg.MaxImportBytes) // a factory's credential file is larger than a JSON call
	return func(c echo.Context) error {
		if c.Request().Method == http.MethodPost {
			switch c.Path() {
			case imagesPath:
				return next(c) // streamed and limited by the catalog's maximum image size
			case credentialsImportPath:
				return bulk(c)
			}
		}
		return limited(c)
	}
}

// catalog is a.images, or the 404 of a server without a catalog.
func (a *API) catalog() (Images, error) {
	if a.images == nil {
		return nil, notFound("this server has no firmware image catalog")
	}
	return a.images, nil
}

type uploaderKey struct{}

// WithUploader returns ctx carrying the identity of whoever uploads images; the authentication middleware
// sets it. Without it, an upload's uploader is the X-Lwota-Uploader header (or nobody).
func WithUploader(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, uploaderKey{}, identity)
}

func uploader(r *http.Request) string {
	if id, ok := r.Context().Value(uploaderKey{}).(string); ok && id != "" {
		return id
	}
	return r.Header.Get(HeaderUploader)
}

// imageJSON is an image as the API shows it.
type imageJSON struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	Version            string            `json:"version"`
	Target             targetJSON        `json:"target"`
	Size               int64             `json:"size"`
	SHA256             string            `json:"sha256"`
	SignatureAlgorithm string            `json:"signature_algorithm,omitempty"`
	KeyID              string            `json:"key_id,omitempty"`
	KeyName            string            `json:"key_name,omitempty"`  // the signing key's name, when it is still known
	Signature          []byte            `json:"signature,omitempty"` // base64
	Unsigned           bool              `json:"unsigned,omitempty"`
	Uploader           string            `json:"uploader,omitempty"`
	CreatedAt          time.Time         `json:"created_at"`
	ReleaseNotes       string            `json:"release_notes,omitempty"`
	Labels             map[string]string `json:"labels,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	MCUboot            *mcubootJSON      `json:"mcuboot,omitempty"`
	Usage              *imageUsageJSON   `json:"usage,omitempty"` // GET /images/{id} only
	Links              imageLinks        `json:"links"`
}

type targetJSON struct {
	Manufacturer string            `json:"manufacturer,omitempty"`
	Model        string            `json:"model,omitempty"`
	DeviceType   string            `json:"device_type,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

type mcubootJSON struct {
	Version       string   `json:"version"`
	HeaderSize    uint16   `json:"header_size"`
	ImageSize     uint32   `json:"image_size"`
	LoadAddr      uint32   `json:"load_addr"`
	Flags         uint32   `json:"flags"`
	HashVerified  bool     `json:"hash_verified"`
	SignatureTLVs []string `json:"signature_tlvs,omitempty"`
}

type imageLinks struct {
	Self    string `json:"self"`
	Content string `json:"content"`
}

func newImageJSON(img *firmware.Image) imageJSON {
	self := imagesPath + "/" + url.PathEscape(img.ID)
	out := imageJSON{
		ID:      img.ID,
		Name:    img.Name,
		Version: img.Version,
		Target: targetJSON{
			Manufacturer: img.Target.Manufacturer,
			Model:        img.Target.Model,
			DeviceType:   img.Target.DeviceType,
			Labels:       img.Target.Labels,
		},
		Size:               img.Size,
		SHA256:             img.SHA256,
		SignatureAlgorithm: string(img.SignatureAlg),
		KeyID:              img.KeyID,
		Signature:          img.Signature,
		Unsigned:           img.Unsigned,
		Uploader:           img.Uploader,
		CreatedAt:          img.CreatedAt,
		ReleaseNotes:       img.ReleaseNotes,
		Labels:             img.Labels,
		Metadata:           img.Metadata,
		Links:              imageLinks{Self: self, Content: self + "/content"},
	}
	if m := img.MCUboot; m != nil {
		out.MCUboot = &mcubootJSON{Version: m.Version, HeaderSize: m.HeaderSize, ImageSize: m.ImageSize,
			LoadAddr: m.LoadAddr, Flags: m.Flags, HashVerified: m.HashVerified, SignatureTLVs: m.SignatureTLVs}
	}
	return out
}

type imageList struct {
	Images     []imageJSON `json:"images"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// uploadMetadata is the metadata part of a multipart upload.
type uploadMetadata struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Target       targetJSON        `json:"target"`
	ReleaseNotes string            `json:"release_notes"`
	Labels       map[string]string `json:"labels"`
	Metadata     map[string]string `json:"metadata"`
	KeyID        string            `json:"key_id"`
	Size         int64             `json:"size"` // 0: unknown
	SHA256       string            `json:"sha256"`
}

// uploadImage: POST /images, multipart/form-data (metadata, signature, file in that order) or
// application/octet-stream with X-Lwota-* headers. The image streams into the catalog unbuffered.
func (a *API) uploadImage(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	r := c.Request()
	ct := r.Header.Get(echo.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != mimeMultipartFormDT && mt != mimeOctetStream {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
			Message: "an image upload must be multipart/form-data or application/octet-stream, not " + strconv.Quote(ct)}
	}
	limit := a.maxUpload
	if mt == mimeMultipartFormDT {
		limit += a.cfg.MaxBodyBytes + maxSignatureBytes // room for the metadata and signature parts
	}
	if r.ContentLength > limit {
		return imageTooLarge(a.maxUpload, nil)
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	// The underlying writer, so net/http learns of the overflow and closes the connection after answering.
	r.Body = http.MaxBytesReader(c.Response().Writer, r.Body, limit)

	var img *firmware.Image
	if mt == mimeMultipartFormDT {
		img, err = a.uploadMultipart(c, images)
	} else {
		img, err = a.uploadRaw(c, images)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, imagesPath+"/"+url.PathEscape(img.ID))
	return c.JSON(http.StatusCreated, newImageJSON(img))
}

func (a *API) uploadMultipart(c echo.Context, images Images) (*firmware.Image, error) {
	r := c.Request()
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest(codeInvalidUpload, "multipart body: %v", err)
	}
	var req firmware.UploadRequest
	var sig []byte
	var haveMeta, haveSig bool
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			if !haveMeta {
				return nil, badRequest(codeInvalidUpload, "multipart body has no metadata part and no file part")
			}
			return nil, badRequest(codeInvalidUpload, "multipart body has no file part")
		}
		if err != nil {
			return nil, multipartError(err)
		}
		name := part.FormName()
		switch {
		case name == "metadata" && !haveMeta:
			if req, err = readMetadata(part, a.cfg.MaxBodyBytes); err != nil {
				return nil, err
			}
			haveMeta = true
		case name == "signature" && !haveSig:
			sig, err = io.ReadAll(io.LimitReader(part, maxSignatureBytes+1))
			if err != nil {
				return nil, multipartError(err)
			}
			if len(sig) > maxSignatureBytes {
				return nil, badRequest(codeInvalidUpload, "signature part is larger than %d bytes", maxSignatureBytes)
			}
			if len(sig) == 0 {
				return nil, badRequest(codeInvalidUpload, "signature part is empty; leave it out for an unsigned image")
			}
			haveSig = true
		case name == "file" && !haveMeta:
			return nil, badRequest(codeInvalidUpload, "the metadata part must come before the file part (order: metadata, signature, file)")
		case name == "file":
			req.Signature = sig
			return a.uploadFile(c, images, mr, req, part)
		case name == "metadata" || name == "signature":
			return nil, badRequest(codeInvalidUpload, "multipart body has two %s parts", name)
		default:
			return nil, badRequest(codeInvalidUpload, "unknown part %q: want metadata, signature and file", name)
		}
	}
}

// uploadFile streams the file part into the catalog, then makes sure nothing followed it.
func (a *API) uploadFile(c echo.Context, images Images, mr *multipart.Reader, req firmware.UploadRequest, file io.Reader) (*firmware.Image, error) {
	r := c.Request()
	req.Uploader = uploader(r)
	img, err := a.uploadUnique(r.Context(), images, req, file)
	if err != nil {
		ae := mapImageError(subjectUpload, err)
		if errors.Is(err, firmware.ErrUnsigned) && req.Signature == nil {
			ae.Message += " (a signature part must come before the file part)"
		}
		return nil, ae
	}
	// A part after the file was read too late to count: a signature sent last made an unsigned image.
	part, err := mr.NextPart()
	if err == io.EOF {
		return img, nil
	}
	what := "unreadable data"
	if err == nil {
		what = strconv.Quote(part.FormName()) + " part"
	}
	kept := "the image was not kept"
	if derr := images.Delete(context.WithoutCancel(r.Context()), img.ID); derr != nil {
		a.logger.Warn("removing a misordered upload failed", "image", img.ID, "err", derr)
		kept = "removing the image failed, delete image " + img.ID
	}
	return nil, badRequest(codeInvalidUpload, "%s after the file part: metadata and signature must come before file (%s)", what, kept)
}

// readMetadata decodes the metadata part, strictly, as a JSON body.
func readMetadata(part io.Reader, limit int64) (firmware.UploadRequest, error) {
	b, err := io.ReadAll(io.LimitReader(part, limit+1))
	if err != nil {
		return firmware.UploadRequest{}, multipartError(err)
	}
	if int64(len(b)) > limit {
		return firmware.UploadRequest{}, badRequest(codeInvalidUpload, "metadata part is larger than %d bytes", limit)
	}
	var m uploadMetadata
	if err := decodeStrict(b, &m); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			ae.Message = strings.Replace(ae.Message, "request body", "metadata part", 1)
		}
		return firmware.UploadRequest{}, err
	}
	size := m.Size
	if size <= 0 {
		size = -1
	}
	return firmware.UploadRequest{
		Name:    m.Name,
		Version: m.Version,
		Target: firmware.Selector{Manufacturer: m.Target.Manufacturer, Model: m.Target.Model,
			DeviceType: m.Target.DeviceType, Labels: m.Target.Labels},
		ReleaseNotes: m.ReleaseNotes,
		Labels:       m.Labels,
		Metadata:     m.Metadata,
		KeyID:        m.KeyID,
		Size:         size,
		SHA256:       m.SHA256,
	}, nil
}

// uploadRaw takes the metadata from X-Lwota-* headers and the image from the whole body.
func (a *API) uploadRaw(c echo.Context, images Images) (*firmware.Image, error) {
	r := c.Request()
	h := r.Header
	req := firmware.UploadRequest{
		KeyID:    h.Get(HeaderKeyID),
		SHA256:   h.Get(HeaderSHA256),
		Size:     r.ContentLength, // -1 when chunked
		Uploader: uploader(r),
	}
	for _, f := range []struct {
		dst    *string
		header string
	}{
		{&req.Name, HeaderName}, {&req.Version, HeaderVersion}, {&req.Target.Manufacturer, HeaderManufacturer},
		{&req.Target.Model, HeaderModel}, {&req.Target.DeviceType, HeaderDeviceType}, {&req.ReleaseNotes, HeaderReleaseNotes},
	} {
		v, err := headerText(f.header, h.Get(f.header))
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	var err error
	if req.Labels, err = headerLabels(HeaderLabels, h.Get(HeaderLabels)); err != nil {
		return nil, err
	}
	if req.Target.Labels, err = headerLabels(HeaderTargetLabels, h.Get(HeaderTargetLabels)); err != nil {
		return nil, err
	}
	if req.Metadata, err = headerLabels(HeaderMetadata, h.Get(HeaderMetadata)); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(h.Get(HeaderSignature)); s != "" {
		sig, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			sig, err = base64.RawStdEncoding.DecodeString(s)
		}
		if err != nil || len(sig) == 0 {
			return nil, badRequest(codeInvalidUpload, "%s is not base64 (standard alphabet)", HeaderSignature)
		}
		req.Signature = sig
	}
	img, err := a.uploadUnique(r.Context(), images, req, r.Body)
	if err != nil {
		return nil, mapImageError(subjectUpload, err)
	}
	return img, nil
}

// headerText is a header's value, percent-decoded.
func headerText(name, v string) (string, error) {
	s, err := url.PathUnescape(v)
	if err != nil || !utf8.ValidString(s) {
		return "", badRequest(codeInvalidUpload, "%s is not percent-encoded UTF-8: %q", name, v)
	}
	return s, nil
}

// headerLabels parses k=v,k=v; keys and values are percent-decoded one by one, so they may hold "," and "=".
func headerLabels(name, v string) (map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		rk, rv, ok := strings.Cut(strings.TrimSpace(pair), "=")
		k, kerr := headerText(name, rk)
		val, verr := headerText(name, rv)
		if !ok || k == "" || kerr != nil || verr != nil {
			return nil, badRequest(codeInvalidUpload, "%s must be key=value pairs separated by commas, not %q", name, v)
		}
		if _, dup := out[k]; dup {
			return nil, badRequest(codeInvalidUpload, "%s names label %q twice", name, k)
		}
		out[k] = val
	}
	return out, nil
}

// multipartError is a failure reading the multipart body.
func multipartError(err error) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return imageTooLarge(mbe.Limit, err)
	}
	if errors.Is(err, context.Canceled) {
		return mapError("request", err)
	}
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidUpload, Message: "multipart body: " + err.Error(), Err: err}
}

func imageTooLarge(limit int64, err error) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeImageTooLarge,
		Message: fmt.Sprintf("upload is larger than the %d bytes this server accepts", limit), Err: err}
}

// subjectUpload is the subject of upload errors; not-found errors then name the missing key themselves.
const subjectUpload = "image upload"

// mapImageError turns a catalog error into its HTTP form; see the table in README.md.
func mapImageError(subject string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := catalogMessage(err)
	var mbe *http.MaxBytesError
	mk := func(status int, code, msg string) *apiError {
		return &apiError{Status: status, Code: code, Message: msg, Err: err}
	}
	switch {
	case errors.As(err, &mbe):
		return imageTooLarge(mbe.Limit, err)
	case errors.Is(err, firmware.ErrTooLarge):
		return mk(http.StatusRequestEntityTooLarge, codeImageTooLarge, msg)
	case errors.Is(err, firmware.ErrTruncated):
		return mk(http.StatusBadRequest, codeTruncated, msg)
	case errors.Is(err, firmware.ErrHashMismatch):
		return mk(http.StatusUnprocessableEntity, codeHashMismatch, msg)
	case errors.Is(err, firmware.ErrBadSignature):
		return mk(http.StatusUnprocessableEntity, codeBadSignature, msg)
	case errors.Is(err, firmware.ErrUnsigned):
		return mk(http.StatusBadRequest, codeSignatureRequired, msg)
	case errors.Is(err, firmware.ErrInUse):
		return mk(http.StatusConflict, codeImageInUse, subject+" is used by a device update or a campaign")
	case errors.Is(err, firmware.ErrNotFound), errors.Is(err, firmware.ErrKeyNotFound):
		if subject != subjectUpload {
			msg = subject + " does not exist"
		}
		return mk(http.StatusNotFound, codeNotFound, msg)
	case errors.Is(err, firmware.ErrStorage):
		return mk(http.StatusServiceUnavailable, codeStorageUnavailable, "image storage is unavailable; try again later")
	case errors.Is(err, firmware.ErrInvalid):
		return mk(http.StatusBadRequest, codeInvalidImage, msg)
	}
	return mapError(subject, err)
}

// catalogMessage is the catalog's error text without our package prefixes.
func catalogMessage(err error) string {
	s := err.Error()
	for _, p := range []string{"firmware: ", "signing: ", "mcuboot: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// idParam is the route's :id, unescaped; what names it in the error.
func idParam(c echo.Context, what string) (string, error) {
	raw := c.Param("id")
	id, err := url.PathUnescape(raw)
	if err != nil || id == "" {
		return "", badRequest(codeInvalidPath, "%s id %q is not a valid URL path segment", what, raw)
	}
	return id, nil
}

// listImages: GET /images?model=&version=&label=k=v&cursor=&limit= (labels: parseLabelFilter)
func (a *API) listImages(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	q := c.QueryParams()
	f := firmware.ImageFilter{Model: q.Get("model"), Version: q.Get("version")}
	if f.Labels, err = parseLabelFilter(q, nil); err != nil {
		return err
	}
	pg, err := a.parsePage(q)
	if err != nil {
		return err
	}
	f.After, f.Limit = pg.after, pg.fetch()
	limit := pg.limit

	imgs, err := images.Images(c.Request().Context(), f)
	if err != nil {
		return mapImageError("image list", err)
	}
	out := imageList{Images: make([]imageJSON, 0, min(len(imgs), limit))}
	if len(imgs) > limit {
		imgs = imgs[:limit]
		out.NextCursor = cursor(imgs[limit-1].ID)
	}
	names := a.keyNames(c.Request().Context(), images)
	for _, img := range imgs {
		j := newImageJSON(img)
		j.KeyName = names[img.KeyID]
		out.Images = append(out.Images, j)
	}
	return c.JSON(http.StatusOK, out)
}

// getImage: GET /images/{id}
func (a *API) getImage(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	id, err := idParam(c, "image")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	img, err := images.Image(ctx, id)
	if err != nil {
		return mapImageError("image "+id, err)
	}
	out := newImageJSON(img)
	out.KeyName = a.keyNames(ctx, images)[img.KeyID]
	if out.Usage, err = a.imageUsage(ctx, img); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// deleteImage: DELETE /images/{id}
func (a *API) deleteImage(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	id, err := idParam(c, "image")
	if err != nil {
		return err
	}
	if err := images.Delete(c.Request().Context(), id); err != nil {
		return mapImageError("image "+id, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// getImageContent: GET /images/{id}/content, with one byte range at most (Range: bytes=).
func (a *API) getImageContent(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	id, err := idParam(c, "image")
	if err != nil {
		return err
	}
	r := c.Request()
	img, err := images.Image(r.Context(), id)
	if err != nil {
		return mapImageError("image "+id, err)
	}
	h := c.Response().Header()
	etag := `"` + img.SHA256 + `"`
	if etagListed(r.Header.Get("If-None-Match"), etag) {
		h.Set("ETag", etag)
		return c.NoContent(http.StatusNotModified)
	}
	status, start, length := http.StatusOK, int64(0), img.Size
	if spec := r.Header.Get("Range"); spec != "" && ifRange(r.Header.Get("If-Range"), etag) {
		s, n, ok, satisfiable := parseRange(spec, img.Size)
		if !satisfiable {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", img.Size))
			return &apiError{Status: http.StatusRequestedRangeNotSatisfiable, Code: codeRangeNotSatisfiable,
				Message: fmt.Sprintf("range %q is outside image %s of %d bytes", spec, id, img.Size)}
		}
		if ok {
			status, start, length = http.StatusPartialContent, s, n
		}
	}
	rc, _, err := images.Open(r.Context(), id, start, length)
	if err != nil {
		return mapImageError("image "+id, err)
	}
	defer rc.Close()
	h.Set(echo.HeaderContentType, mimeOctetStream)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(length, 10))
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	if status == http.StatusPartialContent {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, img.Size))
	}
	c.Response().WriteHeader(status)
	n, err := io.Copy(c.Response(), rc)
	if err == nil && n != length {
		err = fmt.Errorf("image %s: blob store gave %d of %d bytes", id, n, length)
	}
	return err // the answer has started: logged, not written
}

// parseRange reads a single "bytes=" range against size. ok is false when the header is to be ignored
// (another unit, several ranges, bad syntax: the whole image is sent); satisfiable is false for a range
// that starts beyond the end (416).
func parseRange(spec string, size int64) (start, length int64, ok, satisfiable bool) {
	unit, set, found := strings.Cut(spec, "=")
	if !found || strings.TrimSpace(unit) != "bytes" || strings.Contains(set, ",") {
		return 0, 0, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(set), "-")
	if !found {
		return 0, 0, false, true
	}
	if first == "" { // suffix: the last n bytes
		n, ok := digits(last)
		if !ok {
			return 0, 0, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, ok := digits(first)
	if !ok {
		return 0, 0, false, true
	}
	end := size - 1
	if last != "" {
		e, ok := digits(last)
		if !ok || e < s {
			return 0, 0, false, true
		}
		end = min(e, size-1)
	}
	if s >= size {
		return 0, 0, false, false
	}
	return s, end - s + 1, true, true
}

// digits parses a non-negative decimal with nothing else around it.
func digits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// etagListed: an If-None-Match list names etag (weak comparison) or is "*".
func etagListed(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// ifRange: the Range header counts when If-Range is absent or names our ETag (strong comparison);
// a date never matches, as images have no Last-Modified.
func ifRange(v, etag string) bool {
	return v == "" || strings.TrimSpace(v) == etag
}
