package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultDir is where the embedded configuration keeps image bytes.
const DefaultDir = "./data/images"

// tempPrefix names Dir's files that are still being written; List and Open never see them.
const tempPrefix = reservedPrefix + "tmp-"

// staleTemp is the age after which OpenDir removes a temporary file left by a crash.
const staleTemp = time.Hour

// Dir keeps each blob in a file under a root directory, the key being its slash-separated path
// relative to the root. Writes are atomic: a temporary file in the target's directory, fsync,
// rename(2), fsync of the directory. It is safe for concurrent use, also by several processes.
type Dir struct {
	root   string
	signer *URLSigner
}

// OpenDir opens (creating it if needed) the directory store rooted at dir. With a signer,
// PresignGet hands out URLs that Handler serves; without one PresignGet fails with
// ErrNoPresign. Temporary files older than an hour, left by a crash, are removed.
func OpenDir(dir string, signer *URLSigner) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("blobstore: open dir: empty path")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blobstore: open dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("blobstore: open dir %s: %w", dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("blobstore: open dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("blobstore: open dir %s: not a directory", dir)
	}
	d := &Dir{root: root, signer: signer}
	_, _ = d.removeStaleTemps(context.Background(), time.Now().Add(-staleTemp)) // best effort; Sweep retries
	return d, nil
}

// Root returns the absolute path of the directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// Put writes r to key atomically and returns the number of bytes written. Memory use is one
// copy buffer (32 KiB), whatever the size. On error (r's, the disk's, or ctx's) the temporary
// file is removed and key keeps its previous content, if any.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("blobstore: put: %w", err)
	}
	n, err := d.put(ctx, key, r)
	if err != nil {
		return 0, fmt.Errorf("blobstore: put %q: %w", key, err)
	}
	return n, nil
}

func (d *Dir) put(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	dst := d.path(key)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if n, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return 0, err
	}
	if err = f.Chmod(0o640); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, err
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	if err = ctx.Err(); err != nil {
		return 0, err
	}
	if err = os.Rename(f.Name(), dst); err != nil {
		return 0, err
	}
	return n, syncDir(dir)
}

// Rename moves from to to with rename(2), replacing to if it exists.
func (d *Dir) Rename(ctx context.Context, from, to string) error {
	if err := errors.Join(checkKey(from), checkKey(to)); err != nil {
		return fmt.Errorf("blobstore: rename: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
	}
	if ok, err := d.isFile(from); err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
	} else if !ok {
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, ErrNotFound)
	}
	dst := d.path(to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
	}
	if err := os.Rename(d.path(from), dst); err != nil {
		if isNotExist(err) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("blobstore: rename %q to %q: %w", from, to, err)
	}
	return nil
}

// Exists reports whether key holds a blob.
func (d *Dir) Exists(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("blobstore: exists: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("blobstore: exists %q: %w", key, err)
	}
	ok, err := d.isFile(key)
	if err != nil {
		return false, fmt.Errorf("blobstore: exists %q: %w", key, err)
	}
	return ok, nil
}

func (d *Dir) isFile(key string) (bool, error) {
	fi, err := os.Stat(d.path(key))
	switch {
	case isNotExist(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return fi.Mode().IsRegular(), nil
}

// Delete removes key; a missing key is not an error.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("blobstore: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	}
	if ok, err := d.isFile(key); err != nil {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	} else if !ok {
		return nil // missing, or a directory: no blob to delete
	}
	if err := os.Remove(d.path(key)); err != nil && !isNotExist(err) {
		return fmt.Errorf("blobstore: delete %q: %w", key, err)
	}
	return nil
}

// Open returns length bytes of key from offset (length < 0: to the end). A range reaching past
// the end is cut at the end; an offset at or past the end gives an empty reader. A missing key
// is ErrNotFound.
func (d *Dir) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("blobstore: open: %w", err)
	}
	if err := checkRange(offset, length); err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", key, err)
	}
	f, fi, err := d.openFile(key)
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %q: %w", key, err)
	}
	size := fi.Size()
	offset = min(offset, size)
	n := size - offset
	if length >= 0 {
		n = min(n, length)
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, n), f}, nil
}

// openFile opens key's file for reading; a missing key or a directory is ErrNotFound.
func (d *Dir) openFile(key string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(d.path(key))
	if isNotExist(err) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, ErrNotFound
	}
	return f, fi, nil
}

// List returns the keys starting with prefix (a string prefix, not a directory), sorted.
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	// Walk only the deepest directory the prefix names, not the whole tree.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		if dir := prefix[:i]; checkKey(dir) == nil {
			start = d.path(dir)
		}
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // removed while walking, or a prefix naming no directory
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), reservedPrefix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// PresignGet returns a URL, valid for ttl, that Handler serves with key's bytes. It needs the
// URLSigner given to OpenDir; without one it fails with ErrNoPresign.
func (d *Dir) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if d.signer == nil {
		return "", fmt.Errorf("blobstore: presign %q: %w", key, ErrNoPresign)
	}
	return d.signer.PresignGet(ctx, key, ttl)
}

// removeStaleTemps removes temporary files last written before cutoff: leftovers of a crash.
// It returns how many it removed.
func (d *Dir) removeStaleTemps(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil || !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), tempPrefix) {
			return nil
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if os.Remove(p) == nil {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("blobstore: sweep %s: %w", d.root, err)
	}
	return n, nil
}

func isNotExist(err error) bool {
	// ENOTDIR: a key below a key ("a/b" when "a" is a blob) names no blob either.
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // EINVAL: no fsync on this file system's directories
		return err
	}
	return nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

// ctxReader fails reads once ctx is done, so that a Put stops between two reads of its source.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
