// Package firmware is lwota's image catalog: it verifies uploaded images (size, SHA-256, detached
// signature, MCUboot header) while streaming them into a blob store, and keeps their metadata.
package firmware

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/lwota/lwota/firmware/mcuboot"
	"github.com/lwota/lwota/firmware/signing"
)

// Selector says which devices an image is meant for; empty fields match any device.
type Selector struct {
	Manufacturer string            `json:"manufacturer,omitempty"`
	Model        string            `json:"model,omitempty"`
	DeviceType   string            `json:"device_type,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Image is one verified firmware image. Its bytes live in the blob store under BlobKey, which
// is derived from the SHA-256, so the same bytes uploaded twice are stored once.
type Image struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Version      string            `json:"version"` // compared exactly, never by prefix or substring
	Target       Selector          `json:"target"`
	Size         int64             `json:"size"`
	SHA256       string            `json:"sha256"`                        // lowercase hex
	SignatureAlg signing.Algorithm `json:"signature_algorithm,omitempty"` // empty when unsigned
	KeyID        string            `json:"key_id,omitempty"`
	Signature    []byte            `json:"signature,omitempty"`
	Unsigned     bool              `json:"unsigned,omitempty"` // accepted only with unsigned uploads allowed: development
	Uploader     string            `json:"uploader,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	ReleaseNotes string            `json:"release_notes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// Metadata is the release engineers' own key/values (ticket, branch, changelog URL): shown,
	// never matched. Release notes and metadata are the only fields that change after upload.
	Metadata map[string]string `json:"metadata,omitempty"`
	MCUboot  *mcuboot.Info     `json:"mcuboot,omitempty"`
	BlobKey  string            `json:"-"`
}

// Errors callers branch on (the API maps each to an HTTP status).
var (
	ErrNotFound     = errors.New("firmware: image not found")
	ErrKeyNotFound  = errors.New("firmware: signing key not found")
	ErrInvalid      = errors.New("firmware: invalid upload")         // bad metadata, version mismatch, bad MCUboot image
	ErrTooLarge     = errors.New("firmware: image too large")        // over the configured maximum
	ErrTruncated    = errors.New("firmware: upload truncated")       // fewer bytes than declared
	ErrHashMismatch = errors.New("firmware: sha-256 mismatch")       // the client's expected digest differs
	ErrBadSignature = errors.New("firmware: signature not valid")    // no trusted, non-revoked key verifies it
	ErrUnsigned     = errors.New("firmware: signature required")     // no signature and unsigned uploads not allowed
	ErrInUse        = errors.New("firmware: image in use")           // a device update or campaign uses it
	ErrStorage      = errors.New("firmware: blob store unavailable") // S3 or the directory failed: a 5xx
)

// ImageFilter selects images for listing; zero fields match everything.
type ImageFilter struct {
	Model   string
	Version string
	Labels  map[string]string // every pair must match
	After   string            // cursor: images with ID strictly greater
	Limit   int
}

// Store persists image metadata and trusted keys. Implementations live in storage/.
type Store interface {
	SaveImage(ctx context.Context, img *Image) error
	GetImage(ctx context.Context, id string) (*Image, error) // ErrNotFound
	ListImages(ctx context.Context, f ImageFilter) ([]*Image, error)
	DeleteImage(ctx context.Context, id string) error // ErrNotFound
	// EditImage changes the fields of edit that are set, in one statement: ErrNotFound.
	EditImage(ctx context.Context, id string, edit ImageEdit) error
	// CountBlobRefs counts images whose bytes are at blobKey: a blob is removed with its last image.
	CountBlobRefs(ctx context.Context, blobKey string) (int, error)

	SaveKey(ctx context.Context, k *signing.Key) error           // insert or update (revocation) by ID
	GetKey(ctx context.Context, id string) (*signing.Key, error) // ErrKeyNotFound
	ListKeys(ctx context.Context) ([]*signing.Key, error)
}

// Blobs holds image bytes: S3 or a local directory (storage/blobstore).
type Blobs interface {
	// Put streams r to key and returns the bytes written; on error nothing is left under key
	// (on S3 an aborted multipart upload is cleaned up).
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Rename moves from to to (server-side copy and delete on S3, rename(2) on a directory).
	Rename(ctx context.Context, from, to string) error
	Exists(ctx context.Context, key string) (bool, error)
	Delete(ctx context.Context, key string) error
	// Open reads length bytes from offset (length < 0: to the end).
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Presigner is the optional capability of a blob store to hand out time-limited download URLs
// (S3 presigned GET, or lwota's own signed URL for the directory store).
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// UsageChecker tells whether an image is used by an update or a campaign (later issues implement it).
type UsageChecker interface {
	ImageInUse(ctx context.Context, id string) (bool, error)
}

// ImageEdit changes what may change on an image after upload; nil fields stay as they are.
// Version, target and bytes never change: an image is what was signed.
type ImageEdit struct {
	ReleaseNotes *string           // "" removes them
	Metadata     map[string]string // non-nil replaces the whole map (empty removes every key)
}

// UploadRequest is an image upload's metadata; the bytes come as a stream beside it.
type UploadRequest struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Target       Selector          `json:"target"`
	ReleaseNotes string            `json:"release_notes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	// Signature is the detached signature over the image bytes; nil means unsigned.
	Signature []byte `json:"-"`
	// KeyID, when set, names the one trusted key the signature must verify against.
	KeyID string `json:"key_id,omitempty"`
	// Size is the declared length of the body (Content-Length or the client's claim); -1 if unknown.
	// A body that ends short of it is ErrTruncated.
	Size int64 `json:"size,omitempty"`
	// SHA256 is the digest the client expects (hex); empty skips the check.
	SHA256   string `json:"sha256,omitempty"`
	Uploader string `json:"-"`
}
