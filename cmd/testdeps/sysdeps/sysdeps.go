// Package sysdeps is the one list of programs outside Go that lwota's tests and benchmarks run,
// with the Debian package that brings each; tests find those programs only through it.
package sysdeps

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Program is one external program (or file) the suite needs.
type Program struct {
	Name    string   // what callers ask for: a command name, or a file's base name
	Package string   // the Debian package that installs it; "" for a Go program `make tools` builds
	Paths   []string // globs tried when Name is not on PATH; the newest version wins
	Why     string   // which tests use it
}

// programs is the list. A program a test runs that is not here makes Lookup fail with
// ErrUnlisted, and TestEveryLookupIsListed fails on its name in the source.
func programs() []Program {
	return []Program{
		{Name: "coap-client-notls", Package: "libcoap3-bin", Why: "CoAP interop (libcoap's client)"},
		{Name: "coap-client-openssl", Package: "libcoap3-bin", Why: "DTLS interop (libcoap's client with OpenSSL)"},
		{Name: "coap-rd-notls", Package: "libcoap3-bin", Why: "the registration benchmark's baseline (libcoap's Resource Directory)"},
		{Name: "coap-server-openssl", Package: "libcoap3-bin", Why: "the DTLS handshake benchmark's baseline (libcoap with OpenSSL)"},
		{Name: "initdb", Package: "postgresql", Paths: []string{"/usr/lib/postgresql/*/bin/initdb"},
			Why: "PostgreSQL contract suites (a throwaway cluster)"},
		{Name: "pg_ctl", Package: "postgresql", Paths: []string{"/usr/lib/postgresql/*/bin/pg_ctl"},
			Why: "PostgreSQL contract suites (a throwaway cluster)"},
		{Name: "openssl", Package: "openssl", Why: "signing keys and certificates made the way operators make them"},
		{Name: "chromium", Package: "chromium", Paths: []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"},
			Why: "web console browser tests"},
		{Name: "nginx", Package: "nginx", Paths: []string{"/usr/sbin/nginx"}, Why: "the UDP load balancer of cluster tests"},
		{Name: "ngx_stream_module.so", Package: "libnginx-mod-stream",
			Paths: []string{"/usr/lib/nginx/modules/ngx_stream_module.so"}, Why: "nginx's stream (UDP) module"},
		{Name: "stress-ng", Package: "stress-ng", Why: "a CPU-bound neighbour for tests under load"},
		{Name: "npx", Package: "npm", Why: "the pinned OpenAPI linter (@redocly/cli)"},
		{Name: "gcc", Package: "gcc", Why: "cgo, which the race detector of `go test -race` needs"},
		{Name: "runuser", Package: "util-linux", Why: "starts PostgreSQL as the postgres user when tests run as root"},
		{Name: "bash", Package: "bash", Why: "runs the README's shell examples (TestREADMEUpdateExamples)"},
		{Name: "curl", Package: "curl", Why: "the README's API examples, run as written"},
		{Name: "jq", Package: "jq", Why: "the README's examples pick ids out of JSON answers"},
		{Name: "git", Package: "git", Why: "clones the checkout to check the version a built lwota reports"},
		// Built from source into bin/ by `make tools` (storage/s3test looks there first).
		{Name: "versitygw", Why: "the S3-compatible server of the blob-store and upload tests"},
	}
}

// Programs returns the list, sorted by name.
func Programs() []Program {
	ps := programs()
	slices.SortFunc(ps, func(a, b Program) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// Packages returns the Debian packages of the list, sorted and without repeats.
func Packages() []string {
	var pkgs []string
	for _, p := range programs() {
		if p.Package != "" && !slices.Contains(pkgs, p.Package) {
			pkgs = append(pkgs, p.Package)
		}
	}
	sort.Strings(pkgs)
	return pkgs
}

// ErrUnlisted: a caller asked for a program that is not in the list (a mistake in the caller:
// add the program to programs()).
var ErrUnlisted = errors.New("sysdeps: program not in the list")

// MissingError is a listed program that is not installed.
type MissingError struct{ Program Program }

func (e *MissingError) Error() string {
	if e.Program.Package == "" {
		return fmt.Sprintf("%s not found: build it with `make tools` (needed for %s)", e.Program.Name, e.Program.Why)
	}
	return fmt.Sprintf("%s not found: install it with `make deps` (Debian package %s; needed for %s)",
		e.Program.Name, e.Program.Package, e.Program.Why)
}

// Lookup returns the path of a listed program: from PATH, else the newest match of its Paths.
func Lookup(name string) (string, error) {
	i := slices.IndexFunc(programs(), func(p Program) bool { return p.Name == name })
	if i < 0 {
		return "", fmt.Errorf("%w: %q", ErrUnlisted, name)
	}
	p := programs()[i]
	if path, ok := find(p, exec.LookPath, filepath.Glob); ok {
		return path, nil
	}
	return "", &MissingError{Program: p}
}

// Require is Lookup for tests: it fails the test (never skips it) when the program is missing.
func Require(tb testing.TB, name string) string {
	tb.Helper()
	path, err := Lookup(name)
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// Missing returns the listed Debian-packaged programs that are not installed (`make tools` builds
// the others).
func Missing() []Program {
	return missing(exec.LookPath, filepath.Glob)
}

func missing(lookPath func(string) (string, error), glob func(string) ([]string, error)) []Program {
	var out []Program
	for _, p := range Programs() {
		if p.Package == "" {
			continue
		}
		if _, ok := find(p, lookPath, glob); !ok {
			out = append(out, p)
		}
	}
	return out
}

func find(p Program, lookPath func(string) (string, error), glob func(string) ([]string, error)) (string, bool) {
	if !strings.HasSuffix(p.Name, ".so") {
		if path, err := lookPath(p.Name); err == nil {
			return path, true
		}
	}
	for _, pattern := range p.Paths {
		matches, _ := glob(pattern)
		// /usr/lib/postgresql/15/bin before /usr/lib/postgresql/9/bin: compare the numbers.
		slices.SortFunc(matches, func(a, b string) int { return versionOf(b) - versionOf(a) })
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && !fi.IsDir() {
				return m, true
			}
		}
	}
	return "", false
}

// versionOf reads the last all-digit path element (the 15 of /usr/lib/postgresql/15/bin/initdb).
func versionOf(path string) int {
	v := 0
	for _, part := range strings.Split(path, "/") {
		if n, err := strconv.Atoi(part); err == nil {
			v = n
		}
	}
	return v
}
