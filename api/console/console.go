// Package console serves the embedded web console at /ui/: device lookup, update histories,
// campaigns and images in the browser, from files compiled into the binary that talk only to lwota's API.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where the console lives; mount Handler there.
const Prefix = "/ui/"

// ContentSecurityPolicy lets a console page load and call nothing but lwota itself: no CDN, no
// external font or script, no inline script or style. It is also what proves that the console
// works offline.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

//go:embed assets
var assets embed.FS

// file is one asset, read once: the console is small and never changes while lwota runs.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console's files under Prefix: Prefix itself is the single page, every view
// lives in its URL fragment (#/devices, #/campaigns/...). The files carry ContentSecurityPolicy,
// an ETag and "Cache-Control: no-cache", so a browser revalidates them after an upgrade of lwota.
// The files need no token; everything they show comes from the API, which does.
func Handler() (http.Handler, error) {
	files, err := load(assets)
	if err != nil {
		return nil, fmt.Errorf("console: embedded assets: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		// ServeContent answers If-None-Match with 304, and HEAD and ranges as they should be.
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	}), nil
}

// load reads every asset into memory, keyed by its path below assets/.
func load(fsys fs.FS) (map[string]file, error) {
	files := map[string]file{}
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		// Machines differ in their mime tables; the types a browser insists on are fixed here.
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		case ".svg":
			ctype = "image/svg+xml"
		}
		sum := sha256.Sum256(b)
		files[strings.TrimPrefix(p, "assets/")] = file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return files, err
}
