package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
)

func newHandler(t *testing.T) http.Handler {
	t.Helper()
	h, err := Handler()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandler(t *testing.T) {
	h := newHandler(t)
	for _, c := range []struct {
		name, method, path string
		status             int
		ctype              string // prefix
	}{
		{"the page", "GET", "/ui/", 200, "text/html"},
		{"the page by name", "GET", "/ui/index.html", 200, "text/html"},
		{"head", "HEAD", "/ui/", 200, "text/html"},
		{"a module", "GET", "/ui/js/main.js", 200, "text/javascript"},
		{"a view", "GET", "/ui/js/views/device.js", 200, "text/javascript"},
		{"the stylesheet", "GET", "/ui/console.css", 200, "text/css"},
		{"the icon", "GET", "/ui/icon.svg", 200, "image/svg+xml"},
		{"unknown file", "GET", "/ui/nothing.js", 404, "text/plain"},
		{"a folder", "GET", "/ui/js/", 404, "text/plain"},
		{"outside the prefix", "GET", "/other", 404, "text/plain"},
		{"escape attempt", "GET", "/ui/../console.go", 404, "text/plain"},
		{"post", "POST", "/ui/", 405, "text/plain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			if rec.Code != c.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.ctype) {
				t.Fatalf("%d %q, want %d %q", rec.Code, rec.Header().Get("Content-Type"), c.status, c.ctype)
			}
			// Even an error page may load nothing from elsewhere.
			if csp := rec.Header().Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if c.status == 200 && (rec.Header().Get("ETag") == "" || rec.Header().Get("Cache-Control") != "no-cache") {
				t.Errorf("ETag %q, Cache-Control %q", rec.Header().Get("ETag"), rec.Header().Get("Cache-Control"))
			}
		})
	}
}

// A browser that has the file already gets a 304, so an unchanged console costs nothing to reload.
func TestHandlerRevalidates(t *testing.T) {
	h := newHandler(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/js/main.js", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest("GET", "/ui/js/main.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match %s: %d, want 304", etag, rec.Code)
	}
}

func TestPolicyIsSelfOnly(t *testing.T) {
	if !strings.HasPrefix(ContentSecurityPolicy, "default-src 'self';") || strings.Contains(ContentSecurityPolicy, "unsafe") ||
		strings.Contains(ContentSecurityPolicy, "http") {
		t.Fatalf("Content-Security-Policy %q", ContentSecurityPolicy)
	}
}

// assetFiles returns every asset's text by its path below assets/.
func assetFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, p)
		out[strings.TrimPrefix(p, "assets/")] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("only %d assets", len(out))
	}
	return out
}

// Nothing in the console names another host: no CDN, no web font, no analytics. (The policy
// would refuse them anyway; this says so before a browser does.) The SVG namespace is a name,
// not a place, and is the one exception.
func TestAssetsNameNoOtherHost(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, text := range assetFiles(t) {
		for _, m := range url.FindAllString(text, -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s names %q", name, m)
			}
		}
		if strings.Contains(text, "@import") || strings.Contains(text, "@font-face") {
			t.Errorf("%s imports a stylesheet or a font", name)
		}
	}
}

// Every relative reference (module imports, the page's script, stylesheet and icon) names an asset
// that exists, so a typo breaks this test instead of the console.
func TestAssetReferencesResolve(t *testing.T) {
	files := assetFiles(t)
	imports := regexp.MustCompile(`(?m)(?:^import\s[^;]*?from\s+|^import\s+|import\()'([^']+)'`)
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	n := 0
	for name, text := range files {
		var found [][]string
		switch path.Ext(name) {
		case ".js":
			found = imports.FindAllStringSubmatch(text, -1)
		case ".html":
			found = refs.FindAllStringSubmatch(text, -1)
		}
		for _, m := range found {
			target := path.Join(path.Dir(name), m[1])
			if _, ok := files[target]; !ok {
				t.Errorf("%s refers to %s: no such asset", name, m[1])
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d references found: is the pattern still right?", n)
	}
}

// The policy forbids inline scripts and styles, and markup is built from text nodes only, so that
// nothing a device reports can become HTML.
func TestAssetsAvoidInlineCodeAndHTMLStrings(t *testing.T) {
	for name, text := range assetFiles(t) {
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
			"style=", "'style'", "<style", "javascript:"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
		if path.Ext(name) == ".html" && regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(text) {
			t.Errorf("%s has an inline script", name)
		}
	}
}

// Every form control the page builds has a label: field() is the only way the views make one,
// and it pairs a <label for> with the control's id.
func TestControlsAreLabelled(t *testing.T) {
	control := regexp.MustCompile(`h\('(input|select|textarea)', \{([^}]*)\}`)
	n := 0
	for name, text := range assetFiles(t) {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range control.FindAllStringSubmatch(text, -1) {
			attrs := m[2]
			if strings.Contains(attrs, "type: 'radio'") {
				continue // inside a <label>, checked below by the browser tests
			}
			n++
			if !strings.Contains(attrs, "id:") {
				t.Errorf("%s: a %s without an id cannot have a <label for>: %s", name, m[1], attrs)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d form controls found: is the pattern still right?", n)
	}
}

func TestREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"## Name", "## Behaviour", "## Configuration", "## Examples"} {
		if !strings.Contains(string(b), "\n"+h+"\n") {
			t.Errorf("README.md lacks section %q", h)
		}
	}
}
