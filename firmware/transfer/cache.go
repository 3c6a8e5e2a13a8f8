package transfer

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// Blobs is the part of the blob store the transfer server reads (storage/blobstore implements it).
type Blobs interface {
	// Open reads length bytes of key from offset.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

type chunkKey struct {
	blob string
	idx  int64
}

// chunkCache is the read-through cache shared by every transfer: images are read from the blob
// store in fixed chunks, each at most once while it stays cached, however many devices ask.
type chunkCache struct {
	blobs   Blobs
	size    int64 // chunk size
	timeout time.Duration
	m       *metrics

	mu    sync.Mutex
	lru   *simplelru.LRU[chunkKey, []byte] // bounded by count: chunks are ChunkSize, the last of an image smaller
	bytes int64                            // held by lru, for the gauge
	group singleflight.Group
}

func newChunkCache(blobs Blobs, maxBytes, chunkSize int64, timeout time.Duration, m *metrics) *chunkCache {
	c := &chunkCache{blobs: blobs, size: chunkSize, timeout: timeout, m: m}
	// The callback runs inside Add, under c.mu.
	c.lru, _ = simplelru.NewLRU(int(max(1, maxBytes/chunkSize)), func(_ chunkKey, b []byte) {
		c.bytes -= int64(cap(b))
		m.cacheEvictions.Inc()
	})
	return c
}

// chunk returns chunk idx of the blob key whose total size is size. The slice is shared: the
// caller must not modify it.
func (c *chunkCache) chunk(ctx context.Context, key string, idx, size int64) ([]byte, error) {
	k := chunkKey{key, idx}
	c.mu.Lock()
	b, ok := c.lru.Get(k)
	c.mu.Unlock()
	if ok {
		c.m.cacheHits.Inc()
		return b, nil
	}
	c.m.cacheMisses.Inc()
	v, err, _ := c.group.Do(key+"\x00"+strconv.FormatInt(idx, 10), func() (any, error) {
		// A reader that arrived just after a load finished finds the chunk cached.
		c.mu.Lock()
		b, ok := c.lru.Get(k)
		c.mu.Unlock()
		if ok {
			return b, nil
		}
		b, err := c.load(ctx, key, idx, size)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.bytes += int64(cap(b))
		c.lru.Add(k, b)
		c.m.cacheBytes.Set(float64(c.bytes))
		c.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// load reads one chunk from the blob store. It is detached from the device's request: other
// devices wait on the same load.
func (c *chunkCache) load(ctx context.Context, key string, idx, size int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	off := idx * c.size
	n := min(c.size, size-off)
	if n <= 0 {
		return nil, fmt.Errorf("transfer: chunk %d of %q: past the end", idx, key)
	}
	c.m.blobReads.Inc()
	r, err := c.blobs.Open(ctx, key, off, n)
	if err != nil {
		return nil, fmt.Errorf("transfer: read %q at %d: %w", key, off, err)
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("transfer: read %q at %d: %w", key, off, err)
	}
	return b, nil
}

// Reader returns an io.ReaderAt over the blob key of size bytes that reads through the shared
// chunk cache: a push to many devices reads the image from the blob store as a pull does, once
// per chunk. Reads end when ctx does.
func (s *Server) Reader(ctx context.Context, key string, size int64) io.ReaderAt {
	return &cacheReader{ctx: ctx, c: s.cache, key: key, size: size}
}

type cacheReader struct {
	ctx  context.Context
	c    *chunkCache
	key  string
	size int64
}

func (r *cacheReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("transfer: read %q at %d: negative offset", r.key, off)
	}
	n := 0
	for n < len(p) {
		at := off + int64(n)
		if at >= r.size {
			return n, io.EOF
		}
		idx := at / r.c.size
		chunk, err := r.c.chunk(r.ctx, r.key, idx, r.size)
		if err != nil {
			return n, err
		}
		within := at - idx*r.c.size
		if within >= int64(len(chunk)) {
			return n, fmt.Errorf("transfer: %q shorter than %d bytes", r.key, r.size)
		}
		n += copy(p[n:], chunk[within:])
	}
	return n, nil
}
