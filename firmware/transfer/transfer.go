// Package transfer serves firmware image bytes to devices that pull them over CoAP (RFC 7959 Block2).
// Its handler is stateless per device: signed expiring tokens, a block answered from its number alone, a shared chunk cache.
package transfer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/transport"
)

// Grant is what the update driver allows a token's bearer to download.
type Grant struct {
	BlobKey string // where the image bytes are in the blob store
	Size    int64  // the image's size in bytes
	SHA256  string // lowercase hex; its first 8 bytes are the ETag
}

// Grants decides whether the job a token names may be served to a peer. The update driver
// implements it. It returns ErrForbidden when the job belongs to another device or is no
// longer active; any other error is a failure (the device is answered 5.03 and retries).
type Grants interface {
	Grant(ctx context.Context, jobID string, from transport.Peer) (Grant, error)
}

// Tracker is a capability a Grants may add: it is told the job and the end of every block
// served (the bytes the device holds, when it reads in order), so the driver can follow a
// pull's progress. It is called on the serving path, so it must return at once.
type Tracker interface {
	Served(jobID string, end int64)
}

// Config is the transfer server's configuration; zero fields take the DefaultConfig values.
type Config struct {
	// BlockSize is the largest block served, and the size of a first request without Block2:
	// 16 to 1024, rounded down to a power of two.
	BlockSize int
	// CacheBytes bounds the bytes of image chunks cached for all devices.
	CacheBytes int64
	// ChunkSize is the unit read from the blob store and cached: a multiple of 1024.
	ChunkSize int64
	// GrantTTL is how long a Grants answer (granted or forbidden) is reused for the same job
	// and peer, so a transfer does not ask the driver for every block. A grant is then asked
	// for again by one request while the others are served for up to one more GrantTTL.
	GrantTTL time.Duration
	// GrantCacheSize bounds the number of cached Grants answers.
	GrantCacheSize int
	// BlobTimeout bounds one chunk read from the blob store.
	BlobTimeout time.Duration
	// RetryAfter is the Max-Age (whole seconds, at least 1) of a 5.03 answer: when the device
	// should ask again after a failure on lwota's side (grants, blob store).
	RetryAfter time.Duration
}

// DefaultConfig returns 1024-byte blocks, a 64 MiB cache of 64 KiB chunks, grants reused for
// 2 s (at most 65536 of them), 10 s chunk reads and 5.03 answers asking for a retry in 10 s.
func DefaultConfig() Config {
	return Config{BlockSize: 1024, CacheBytes: 64 << 20, ChunkSize: 64 << 10,
		GrantTTL: 2 * time.Second, GrantCacheSize: 65536, BlobTimeout: 10 * time.Second,
		RetryAfter: 10 * time.Second}
}

// PathPrefix is the path under which images are served: PathPrefix + token.
const PathPrefix = "/fw/"

// maxURILen is the longest Package URI (LwM2M Object 5 resource 1 is a string of 0..255).
const maxURILen = 255

// contentOctetStream is the Content-Format application/octet-stream.
const contentOctetStream = 42

// Server is the CoAP handler of firmware downloads (GET /fw/{token}). It keeps nothing per
// device. It is safe for concurrent use.
type Server struct {
	cfg    Config
	szx    uint8
	tokens *Tokens
	grants Grants
	track  Tracker // grants, when it tracks progress; else nil
	cache  *chunkCache
	log    *slog.Logger
	m      *metrics
	now    func() time.Time

	gc *grantCache // grants.go
}

type grantKey struct {
	job  string
	peer transport.Peer
}

type grantEntry struct {
	grant      Grant
	etag       []byte
	err        error // nil or ErrForbidden
	until      time.Time
	refreshing bool // expired, and a request is asking Grants again (grants.go)
}

// New returns a transfer server: tokens checks the URIs' tokens, grants maps a job to the
// image it may download, blobs holds the bytes. A nil logger discards; a nil reg leaves the
// metrics unregistered.
func New(cfg Config, tokens *Tokens, grants Grants, blobs Blobs, logger *slog.Logger, reg prometheus.Registerer) *Server {
	def := DefaultConfig()
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = def.BlockSize
	}
	cfg.BlockSize = min(max(cfg.BlockSize, 16), 1024)
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = def.CacheBytes
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = def.ChunkSize
	}
	cfg.ChunkSize = max(cfg.ChunkSize/1024, 1) * 1024 // blocks never straddle two chunks
	if cfg.GrantTTL <= 0 {
		cfg.GrantTTL = def.GrantTTL
	}
	if cfg.GrantCacheSize <= 0 {
		cfg.GrantCacheSize = def.GrantCacheSize
	}
	if cfg.BlobTimeout <= 0 {
		cfg.BlobTimeout = def.BlobTimeout
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = def.RetryAfter
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(reg)
	track, _ := grants.(Tracker)
	return &Server{
		cfg:    cfg,
		szx:    transport.SZXFor(cfg.BlockSize),
		tokens: tokens,
		grants: grants,
		track:  track,
		cache:  newChunkCache(blobs, cfg.CacheBytes, cfg.ChunkSize, cfg.BlobTimeout, m),
		log:    logger,
		m:      m,
		now:    time.Now,
		gc:     newGrantCache(cfg.GrantCacheSize),
	}
}

// URI returns the Package URI of jobID's image under base ("coap://host:port"), valid for ttl.
// It fails with ErrURITooLong beyond 255 characters.
func (s *Server) URI(base string, jobID string, ttl time.Duration) (string, error) {
	tok, err := s.tokens.Mint(jobID, ttl)
	if err != nil {
		return "", err
	}
	return s.uri(base, jobID, tok)
}

// URIUntil is URI with a fixed expiry: minted again for the same job and expiry it is the same
// URI, so a device told it again after a restart resumes its download.
func (s *Server) URIUntil(base string, jobID string, until time.Time) (string, error) {
	tok, err := s.tokens.MintUntil(jobID, until)
	if err != nil {
		return "", err
	}
	return s.uri(base, jobID, tok)
}

func (s *Server) uri(base, jobID, tok string) (string, error) {
	uri := strings.TrimSuffix(base, "/") + PathPrefix + tok
	if len(uri) > maxURILen {
		return "", fmt.Errorf("%w: %d characters for job %q", ErrURITooLong, len(uri), jobID)
	}
	return uri, nil
}

// Inline implements transport.InlineHandler: ServeCoAP never sends to the device that asks (it
// reads the grant, the blob cache and storage, and tells the Tracker, which returns at once), so
// a DTLS endpoint may answer a block on the session's goroutine, one hand-off fewer per block.
func (s *Server) Inline(*transport.Message) bool { return true }

var _ transport.InlineHandler = (*Server)(nil)

// ServeCoAP answers one block request of GET /fw/{token} from its block number and size alone.
func (s *Server) ServeCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	tok, ok := strings.CutPrefix(req.Path, PathPrefix)
	if !ok || tok == "" || strings.Contains(tok, "/") {
		return s.refuse(transport.NotFound, reasonInvalid, "")
	}
	if req.Code != transport.GET {
		return s.refuse(transport.MethodNotAllowed, reasonMethod, "")
	}
	job, err := s.tokens.Parse(tok)
	switch {
	case errors.Is(err, ErrExpired):
		return s.refuse(transport.NotFound, reasonExpired, "expired")
	case err != nil:
		return s.refuse(transport.NotFound, reasonInvalid, "")
	}
	g, err := s.grant(ctx, job, from)
	switch {
	case errors.Is(err, ErrForbidden):
		return s.refuse(transport.Forbidden, reasonForbidden, "")
	case err != nil:
		s.log.Warn("firmware grant failed", "job", job, "peer", from.Addr.String(), "err", err)
		return s.refuse(transport.ServiceUnavailable, reasonUnavailable, "")
	}

	// RFC 7959 §2.4: the server's size wins when smaller; the block number then counts in it.
	szx, num := s.szx, uint32(0)
	if req.Block2.Set {
		off := uint64(req.Block2.Num) << (req.Block2.SZX + 4)
		szx = min(req.Block2.SZX, s.szx)
		num64 := off >> (szx + 4)
		if num64 >= 1<<20 { // Block2 NUM is at most 20 bits
			return s.refuse(transport.BadOption, reasonBadBlock, "")
		}
		num = uint32(num64)
	}
	size := int64(16) << szx
	off := int64(num) * size
	if off >= g.grant.Size && !(off == 0 && g.grant.Size == 0) { // RFC 7959 §2.2: 4.02
		return s.refuse(transport.BadOption, reasonBadBlock, "")
	}
	end := min(off+size, g.grant.Size)
	var payload []byte
	if end > off {
		idx := off / s.cfg.ChunkSize
		chunk, err := s.cache.chunk(ctx, g.grant.BlobKey, idx, g.grant.Size)
		if err != nil {
			s.log.Warn("firmware read failed", "job", job, "blob", g.grant.BlobKey, "err", err)
			return s.refuse(transport.ServiceUnavailable, reasonUnavailable, "")
		}
		a, b := off-idx*s.cfg.ChunkSize, end-idx*s.cfg.ChunkSize
		if b > int64(len(chunk)) {
			s.log.Warn("firmware shorter than granted", "job", job, "blob", g.grant.BlobKey, "size", g.grant.Size)
			return s.refuse(transport.ServiceUnavailable, reasonUnavailable, "")
		}
		payload = chunk[a:b:b]
	}
	resp := transport.NewMessage(transport.Content)
	resp.ContentFormat = contentOctetStream
	resp.Block2 = transport.Block{Set: true, Num: num, More: end < g.grant.Size, SZX: szx}
	resp.Size2 = g.grant.Size
	resp.ETag = g.etag
	resp.Payload = payload
	s.m.blocks.Inc()
	s.m.bytes.Add(float64(len(payload)))
	if s.track != nil {
		s.track.Served(job, end)
	}
	return resp
}

// grant asks Grants about (job, peer), reusing an answer younger than GrantTTL.
func (s *Server) grant(ctx context.Context, job string, from transport.Peer) (grantEntry, error) {
	k := grantKey{job, from}
	now := s.now()
	// An expired grant stays usable for one more GrantTTL while a request refreshes it: a job
	// that stopped delivering is refused at most 2 GrantTTL (4 s) later.
	if e, ok := s.gc.get(k, now, s.cfg.GrantTTL); ok {
		if e.refreshing {
			s.m.grantsStale.Inc()
		}
		return e, e.err
	}
	g, err := s.grants.Grant(ctx, job, from)
	if err != nil && !errors.Is(err, ErrForbidden) {
		s.m.grantLookups.WithLabelValues(lookupFailed).Inc()
		s.gc.refreshFailed(k)
		return grantEntry{}, err
	}
	if err != nil {
		s.m.grantLookups.WithLabelValues(lookupForbidden).Inc()
	} else {
		s.m.grantLookups.WithLabelValues(lookupGranted).Inc()
	}
	e := grantEntry{grant: g, err: err, until: now.Add(s.cfg.GrantTTL)}
	if err == nil {
		if etag, herr := hex.DecodeString(g.SHA256); herr == nil && len(etag) >= 8 {
			e.etag = etag[:8:8]
		}
	}
	s.gc.add(k, e)
	return e, e.err
}

func (s *Server) refuse(code transport.Code, reason, diagnostic string) *transport.Message {
	s.m.refused.WithLabelValues(reason).Inc()
	r := transport.NewMessage(code)
	if code == transport.ServiceUnavailable {
		r.MaxAge = uint32(max(s.cfg.RetryAfter/time.Second, 1))
	}
	if diagnostic != "" {
		r.Payload = []byte(diagnostic)
	}
	return r
}

// mustLRU is an LRU of n entries; NewLRU fails only for n <= 0, which the config defaults rule out.
func mustLRU[K comparable, V any](n int) *simplelru.LRU[K, V] {
	c, err := simplelru.NewLRU[K, V](max(n, 1), nil)
	if err != nil {
		panic(err)
	}
	return c
}
