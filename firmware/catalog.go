package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is the catalog's configuration; zero fields take the DefaultConfig values.
type Config struct {
	// MaxImageSize bounds an image's bytes; a larger upload is refused with ErrTooLarge.
	MaxImageSize int64
	// AllowUnsigned accepts uploads without a signature and marks them Unsigned. Development only:
	// with it off (the default), every image a device can get has a verified signature.
	AllowUnsigned bool
	// TempPrefix is the blob key prefix of uploads in progress; an upload is renamed to its
	// content address only once every check passed.
	TempPrefix string
}

// DefaultMaxImageSize is the default MaxImageSize: 64 MiB.
const DefaultMaxImageSize = 64 << 20

// DefaultConfig returns the defaults: 64 MiB images, signatures required, uploads under "uploads/".
func DefaultConfig() Config {
	return Config{MaxImageSize: DefaultMaxImageSize, TempPrefix: "uploads/"}
}

// blobPrefix starts the content address of an image's bytes: blobPrefix + hex SHA-256.
const blobPrefix = "images/sha256/"

// ErrNoDownloadURL is DownloadURL's error when the blob store cannot hand out URLs (it is not a
// Presigner): devices then pull the image over CoAP.
var ErrNoDownloadURL = errors.New("firmware: blob store has no download URLs")

// Catalog is the firmware image catalog: it verifies uploads while streaming them into the blob
// store, keeps their metadata in the Store, and manages the trusted signing keys. It is safe for
// concurrent use.
type Catalog struct {
	store Store
	blobs Blobs
	usage UsageChecker // nil: no image is ever in use
	cfg   Config
	log   *slog.Logger
	m     *metrics
	now   func() time.Time
	ids   idSource
	locks keyLocks   // per blob key: finalizing an upload vs deleting the last image of those bytes
	keyMu sync.Mutex // AddKey and RevokeKey: a key's save never overwrites a revocation
}

// NewCatalog returns a catalog over store and blobs. usage may be nil (nothing is in use); a nil
// logger discards, a nil reg leaves the metrics unregistered, a nil now is time.Now.
func NewCatalog(store Store, blobs Blobs, usage UsageChecker, cfg Config, logger *slog.Logger,
	reg prometheus.Registerer, now func() time.Time) *Catalog {
	def := DefaultConfig()
	if cfg.MaxImageSize <= 0 {
		cfg.MaxImageSize = def.MaxImageSize
	}
	if cfg.TempPrefix == "" {
		cfg.TempPrefix = def.TempPrefix
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Catalog{
		store: store,
		blobs: blobs,
		usage: usage,
		cfg:   cfg,
		log:   logger,
		m:     newMetrics(reg),
		now:   now,
	}
}

// Image returns the image id, or an error matching ErrNotFound.
func (c *Catalog) Image(ctx context.Context, id string) (*Image, error) {
	img, err := c.store.GetImage(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", id, err)
	}
	return img, nil
}

// Images lists the images matching f, ordered by ID (upload order): pass the last ID of a page
// as f.After to get the next one.
func (c *Catalog) Images(ctx context.Context, f ImageFilter) ([]*Image, error) {
	imgs, err := c.store.ListImages(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return imgs, nil
}

// Edit changes the release notes and metadata of image id (ErrInvalid, ErrNotFound) and returns
// the image as stored after the change. Bad input changes nothing.
func (c *Catalog) Edit(ctx context.Context, id string, edit ImageEdit) (*Image, error) {
	if err := checkInfo(edit); err != nil {
		return nil, fmt.Errorf("edit image %s: %w", id, err)
	}
	if err := c.store.EditImage(ctx, id, edit); err != nil {
		return nil, fmt.Errorf("edit image %s: %w", id, err)
	}
	img, err := c.store.GetImage(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("edit image %s: %w", id, err)
	}
	c.log.InfoContext(ctx, "image edited", "id", id, "release_notes", edit.ReleaseNotes != nil, "metadata", edit.Metadata != nil)
	return img, nil
}

// Delete removes the image id: ErrNotFound if there is none, ErrInUse while an update or a
// campaign uses it. The bytes go with the last image that has them.
func (c *Catalog) Delete(ctx context.Context, id string) error {
	img, err := c.store.GetImage(ctx, id)
	if err != nil {
		return fmt.Errorf("delete image %s: %w", id, err)
	}
	if c.usage != nil {
		used, err := c.usage.ImageInUse(ctx, id)
		if err != nil {
			return fmt.Errorf("delete image %s: usage: %w", id, err)
		}
		if used {
			return fmt.Errorf("delete image %s: %w", id, ErrInUse)
		}
	}
	unlock := c.locks.lock(img.BlobKey)
	defer unlock()
	if err := c.store.DeleteImage(ctx, id); err != nil {
		return fmt.Errorf("delete image %s: %w", id, err)
	}
	c.log.InfoContext(ctx, "image deleted", "id", id, "name", img.Name, "version", img.Version)
	// The row is gone: from here on a failure leaves an unreferenced blob behind, which is logged
	// rather than returned (retrying the delete would answer ErrNotFound).
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	refs, err := c.store.CountBlobRefs(ctx, img.BlobKey)
	if err != nil {
		c.log.WarnContext(ctx, "image deleted, blob kept: cannot count its references", "id", id, "blob", img.BlobKey, "err", err)
		return nil
	}
	if refs == 0 {
		if err := c.blobs.Delete(ctx, img.BlobKey); err != nil {
			c.log.WarnContext(ctx, "image deleted, blob left behind", "id", id, "blob", img.BlobKey, "err", err)
		}
	}
	return nil
}

// Open reads length bytes of the image id from offset (length < 0: to the end), and returns the
// image beside them. A range past the end is ErrInvalid.
func (c *Catalog) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, *Image, error) {
	img, err := c.store.GetImage(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("open image %s: %w", id, err)
	}
	if offset < 0 || offset > img.Size {
		return nil, nil, fmt.Errorf("open image %s: %w: offset %d outside its %d bytes", id, ErrInvalid, offset, img.Size)
	}
	if length < 0 || length > img.Size-offset {
		length = img.Size - offset
	}
	rc, err := c.blobs.Open(ctx, img.BlobKey, offset, length)
	if err != nil {
		return nil, nil, fmt.Errorf("open image %s: %w", id, storageErr(ctx, err))
	}
	return rc, img, nil
}

// DownloadURL returns a URL that serves the image id's bytes for ttl, when the blob store is a
// Presigner (S3, or a directory with a URL signer); otherwise ErrNoDownloadURL.
func (c *Catalog) DownloadURL(ctx context.Context, id string, ttl time.Duration) (string, error) {
	img, err := c.store.GetImage(ctx, id)
	if err != nil {
		return "", fmt.Errorf("download URL of image %s: %w", id, err)
	}
	p, ok := c.blobs.(Presigner)
	if !ok {
		return "", fmt.Errorf("download URL of image %s: %w", id, ErrNoDownloadURL)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("download URL of image %s: %w: ttl %s", id, ErrInvalid, ttl)
	}
	u, err := p.PresignGet(ctx, img.BlobKey, ttl) // a local computation on S3 too: not ErrStorage
	if err != nil {
		return "", fmt.Errorf("download URL of image %s: %w", id, err)
	}
	return u, nil
}

// storageErr classifies a blob store failure: the caller's own cancellation stays itself,
// anything else is ErrStorage (a 5xx) with the store's reason.
func storageErr(ctx context.Context, err error) error {
	switch ctxErr := ctx.Err(); {
	case ctxErr == nil:
		return fmt.Errorf("%w: %w", ErrStorage, err)
	case errors.Is(err, ctxErr):
		return err
	default: // the store reported the ended context in its own words
		return fmt.Errorf("%w: %v", ctxErr, err)
	}
}

// cleanupTimeout bounds the clean-up after a refused upload or a delete, which runs even when the
// caller's context has ended.
const cleanupTimeout = 30 * time.Second

// cleanupContext keeps ctx's values but not its cancellation, with cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// keyLocks is a mutex per key, for as long as someone holds or waits for it.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (l *keyLocks) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}
