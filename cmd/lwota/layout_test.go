package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/lwota/lwota"

// goPackage is one folder of non-test Go files.
type goPackage struct {
	dir     string // relative to the repository root, slash-separated
	name    string
	doc     bool
	imports map[string]bool
}

func repoPackages(t *testing.T) []goPackage {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	byDir := map[string]*goPackage{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || d.Name() == "data") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root && isModule(path) {
			return filepath.SkipDir // another module (a patched dependency): not lwota's packages; TestNestedModules
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := byDir[rel]
		if p == nil {
			p = &goPackage{dir: rel, name: f.Name.Name, imports: map[string]bool{}}
			byDir[rel] = p
		}
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") || f.Doc != nil && f.Name.Name == "main" && strings.HasPrefix(f.Doc.Text(), "Command ") {
			p.doc = true
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			p.imports[path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []goPackage
	for _, p := range byDir {
		out = append(out, *p)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d packages under %s", len(out), root)
	}
	return out
}

// isModule reports whether dir holds a go.mod of its own.
func isModule(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "go.mod"))
	return err == nil
}

// TestNestedModules: a module inside the repository is only ever a patched dependency kept under
// third_party/, used through a replace directive in go.mod and described by its LWOTA-PATCHES.md;
// anything else would be lwota code hiding from TestHouseRules.
func TestNestedModules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || path == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || d.Name() == "data" {
			return filepath.SkipDir
		}
		if !isModule(path) {
			return nil
		}
		found++
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, "third_party/") {
			t.Errorf("module %s: a module inside the repository belongs under third_party/", rel)
		}
		if !regexp.MustCompile(`(?m)^replace \S+ => \./` + regexp.QuoteMeta(rel) + `\s*$`).Match(gomod) {
			t.Errorf("module %s is not the target of a replace directive in go.mod", rel)
		}
		if _, err := os.Stat(filepath.Join(path, "LWOTA-PATCHES.md")); err != nil {
			t.Errorf("module %s has no LWOTA-PATCHES.md saying what lwota changed and why", rel)
		}
		return filepath.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no nested module found: third_party/pion-dtls should be one")
	}
}

// sysdepsDir is the one list of programs outside Go the tests run (`make deps` installs them). It is
// a leaf that imports only the standard library, so test support in every layer (storage/pgtest,
// storage/s3test, tests in server/ and firmware/) may use it without bending the layering.
const sysdepsDir = "cmd/testdeps/sysdeps"

// The layering of DEVELOPERS.md and shared/style.md, as a test: a change that breaks it fails here.
func TestHouseRules(t *testing.T) {
	topLevel := map[string]bool{"cmd": true, "server": true, "firmware": true, "campaigns": true, "storage": true, "api": true, "migrations": true}
	// rules: a package under the key may not import a package under any of the values.
	forbidden := map[string][]string{
		"server":     {"api", "campaigns", "firmware", "storage", "cmd"},
		"firmware":   {"api", "campaigns", "storage", "cmd"},
		"campaigns":  {"api", "storage", "cmd"},
		"api":        {"storage", "cmd"},
		"storage":    {"api", "cmd"}, // storage implements campaigns.Store as it does fwupdate.Store
		"migrations": {"api", "cmd", "server", "storage"},
	}
	for _, p := range repoPackages(t) {
		top, _, _ := strings.Cut(p.dir, "/")
		if !topLevel[top] {
			t.Errorf("package %s lives outside the layout's top-level folders", p.dir)
		}
		for _, seg := range strings.Split(p.dir, "/") {
			switch seg {
			case "internal", "pkg", "util", "utils", "common", "helpers":
				t.Errorf("package %s: %q folders are not allowed", p.dir, seg)
			}
		}
		if !p.doc {
			t.Errorf("package %s has no doc comment starting %q", p.dir, "Package "+p.name)
		}
		for imp := range p.imports {
			rel, ours := strings.CutPrefix(imp, module+"/")
			if p.dir == sysdepsDir && (ours || strings.Contains(strings.Split(imp, "/")[0], ".")) {
				t.Errorf("%s imports %s: the list of external programs stays a leaf (standard library only)", p.dir, imp)
			}
			if ours && rel == sysdepsDir {
				continue // the test support of every layer finds external programs through it
			}
			if ours {
				impTop, _, _ := strings.Cut(rel, "/")
				for _, bad := range forbidden[top] {
					if impTop == bad {
						t.Errorf("%s imports %s: %s may not depend on %s", p.dir, rel, top, bad)
					}
				}
				if strings.HasPrefix(p.dir, "server/codec") && !strings.HasPrefix(rel, "server/codec") && rel != "server/lwm2m" {
					t.Errorf("%s imports %s: codecs depend only on server/lwm2m", p.dir, rel)
				}
				continue
			}
			if (strings.HasPrefix(imp, "github.com/plgd-dev/go-coap") || strings.HasPrefix(imp, "github.com/pion/")) &&
				p.dir != "server/transport" && !strings.HasPrefix(p.dir, "server/transport/") && p.dir != "server/lwm2mtest" {
				t.Errorf("%s imports %s: only server/transport speaks go-coap (the simulator is a separate client on purpose)", p.dir, imp)
			}
		}
	}
}

// Every package folder with behaviour worth explaining keeps a README next to its code.
func TestPackageReadmes(t *testing.T) {
	for _, dir := range []string{"api", "server", "server/transport", "server/transport/tcp", "server/registration", "server/codec", "server/lwm2m", "server/lwm2mtest", "storage/sqlstore", "storage/blobstore", "migrations", "firmware", "firmware/signing", "firmware/mcuboot", "firmware/transfer", "firmware/delivery", "server/fwupdate", "campaigns/selector", "campaigns/plan", "server/webhooks"} {
		b, err := os.ReadFile(filepath.Join("../..", dir, "README.md"))
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		if len(b) < 200 {
			t.Errorf("%s/README.md is only %d bytes", dir, len(b))
		}
	}
}
