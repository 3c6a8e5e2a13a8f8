package blobstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MinSecretLen is the shortest URLSigner secret accepted.
const MinSecretLen = 16

// URLSigner makes and checks lwota's own presigned download URLs for the directory store:
//
//	BASE/blobs/KEY?exp=UNIX&sig=HEX(HMAC-SHA256(secret, KEY + "\n" + UNIX))
//
// where KEY is the blob key (each segment path-escaped in the URL) and UNIX the expiry in
// seconds since the epoch. Dir.Handler serves them.
type URLSigner struct {
	base   string // without a trailing slash
	prefix string // the path Handler strips: BASE's path + "/blobs/"
	secret []byte
	now    func() time.Time
}

// NewURLSigner returns a signer for URLs under baseURL (http or https, optionally with a path:
// the URL where lwota's HTTP server is reached by devices). secret must be at least
// MinSecretLen bytes; every lwota instance serving the same directory needs the same one. now
// may be nil (time.Now).
func NewURLSigner(baseURL string, secret []byte, now func() time.Time) (*URLSigner, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("blobstore: url signer: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("blobstore: url signer: base URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("blobstore: url signer: secret of %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if now == nil {
		now = time.Now
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &URLSigner{
		base:   u.String(),
		prefix: u.Path + "/blobs/",
		secret: append([]byte(nil), secret...),
		now:    now,
	}, nil
}

// PresignGet returns a URL for key valid for ttl (rounded up to whole seconds). It does not
// check that key exists: fetching the URL of a missing blob gives 404.
func (s *URLSigner) PresignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("blobstore: presign: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("blobstore: presign %q: ttl %v is not positive", key, ttl)
	}
	t := s.now().Add(ttl)
	exp := t.Unix()
	if t.Nanosecond() > 0 {
		exp++
	}
	e := strconv.FormatInt(exp, 10)
	return s.base + "/blobs/" + escapeKey(key) + "?exp=" + e + "&sig=" + hex.EncodeToString(s.mac(key, e)), nil
}

func (s *URLSigner) mac(key, exp string) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(key + "\n" + exp))
	return h.Sum(nil)
}

var (
	errBadSignature = errors.New("signature does not match")
	errExpired      = errors.New("URL expired")
)

// verify checks a URL's signature (in constant time), then its expiry.
func (s *URLSigner) verify(key, exp, sig string) error {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return errBadSignature
	}
	if _, err := strconv.ParseInt(exp, 10, 64); err != nil {
		return errBadSignature
	}
	if !hmac.Equal(got, s.mac(key, exp)) {
		return errBadSignature
	}
	e, _ := strconv.ParseInt(exp, 10, 64)
	if s.now().Unix() > e {
		return errExpired
	}
	return nil
}

func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Handler serves the URLs of the Dir's URLSigner, at the request path BASEPATH/blobs/KEY (mount
// it at "/blobs/" of a mux without stripping the prefix). GET and HEAD only (405 otherwise);
// 403 for a missing, tampered or expired signature, checked before the blob is looked up;
// 404 for a missing blob. Range and conditional requests are served by http.ServeContent,
// with an ETag from the file's size and modification time.
func (d *Dir) Handler() http.Handler {
	return http.HandlerFunc(d.serveBlob)
}

func (d *Dir) serveBlob(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if d.signer == nil {
		http.NotFound(w, r)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, d.signer.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if err := d.signer.verify(key, q.Get("exp"), q.Get("sig")); err != nil {
		http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	if checkKey(key) != nil {
		http.NotFound(w, r)
		return
	}
	f, fi, err := d.openFile(key)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "blob store unavailable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	h.Set("Cache-Control", "private")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}
