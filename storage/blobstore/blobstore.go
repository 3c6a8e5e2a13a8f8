// Package blobstore keeps firmware image bytes for firmware.Blobs: in a local directory (Dir,
// the embedded default) or in an S3 bucket (S3), each with time-limited download URLs.
package blobstore

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/lwota/lwota/firmware"
)

// Errors callers branch on.
var (
	// ErrNotFound: Open, Rename or a presigned URL named a key that holds no blob.
	ErrNotFound = errors.New("blobstore: blob not found")
	// ErrInvalidKey: the key is empty, absolute, not in canonical form (".", "..", "//", a
	// trailing "/"), contains NUL or a backslash, or has a segment starting with ".lwota-".
	ErrInvalidKey = errors.New("blobstore: invalid key")
	// ErrNoPresign: PresignGet on a Dir opened without a URLSigner.
	ErrNoPresign = errors.New("blobstore: presigned URLs not configured")
)

var (
	_ firmware.Blobs     = (*Dir)(nil)
	_ firmware.Presigner = (*Dir)(nil)
	_ firmware.Blobs     = (*S3)(nil)
	_ firmware.Presigner = (*S3)(nil)
	_ firmware.Presigner = (*URLSigner)(nil)
)

// reservedPrefix starts the names of Dir's temporary files; no key segment may start with it.
const reservedPrefix = ".lwota-"

// checkKey reports whether key is a canonical, relative, slash-separated path that maps to the
// same file on every store: both stores refuse the same keys.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w %q: contains NUL or a backslash", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: absolute", ErrInvalidKey, key)
	case path.Clean(key) != key || key == "." || key == ".." || strings.HasPrefix(key, "../"):
		return fmt.Errorf("%w %q: not a clean relative path", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if strings.HasPrefix(seg, reservedPrefix) {
			return fmt.Errorf("%w %q: segments starting %q are reserved", ErrInvalidKey, key, reservedPrefix)
		}
	}
	return nil
}

// checkRange validates Open's arguments.
func checkRange(offset, length int64) error {
	if offset < 0 {
		return fmt.Errorf("blobstore: negative offset %d", offset)
	}
	return nil
}
