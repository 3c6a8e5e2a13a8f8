package sysdeps

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	files := map[string]bool{}
	tests := []struct {
		name     string
		program  Program
		onPath   map[string]string
		globs    map[string][]string
		wantPath string
		wantOK   bool
	}{
		{name: "on PATH", program: Program{Name: "openssl"}, onPath: map[string]string{"openssl": "/usr/bin/openssl"},
			wantPath: "/usr/bin/openssl", wantOK: true},
		{name: "newest versioned directory wins", program: Program{Name: "initdb", Paths: []string{"/pg/*/bin/initdb"}},
			globs:    map[string][]string{"/pg/*/bin/initdb": {"/pg/9/bin/initdb", "/pg/15/bin/initdb", "/pg/13/bin/initdb"}},
			wantPath: "/pg/15/bin/initdb", wantOK: true},
		{name: "a module file is never looked up on PATH", program: Program{Name: "mod.so", Paths: []string{"/m/mod.so"}},
			onPath: map[string]string{"mod.so": "/usr/bin/mod.so"}},
		{name: "nowhere", program: Program{Name: "nginx", Paths: []string{"/usr/sbin/nginx"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookPath := func(name string) (string, error) {
				if p, ok := tt.onPath[name]; ok {
					return p, nil
				}
				return "", errors.New("not found")
			}
			dir := t.TempDir()
			glob := func(pattern string) ([]string, error) {
				// The matches are made real files under dir, so that find's Stat sees them.
				var out []string
				for _, m := range tt.globs[pattern] {
					p := filepath.Join(dir, m)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						return nil, err
					}
					if err := os.WriteFile(p, nil, 0o755); err != nil {
						return nil, err
					}
					files[p] = true
					out = append(out, p)
				}
				return out, nil
			}
			got, ok := find(tt.program, lookPath, glob)
			if ok != tt.wantOK {
				t.Fatalf("found = %v (%q), want %v", ok, got, tt.wantOK)
			}
			if ok && strings.TrimPrefix(got, dir) != tt.wantPath {
				t.Fatalf("path = %q, want %q", strings.TrimPrefix(got, dir), tt.wantPath)
			}
		})
	}
}

func TestLookupUnlistedIsAnError(t *testing.T) {
	if _, err := Lookup("definitely-not-listed"); !errors.Is(err, ErrUnlisted) {
		t.Fatalf("err = %v, want ErrUnlisted", err)
	}
}

func TestMissingErrorNamesMakeDeps(t *testing.T) {
	err := &MissingError{Program: Program{Name: "nginx", Package: "nginx", Why: "cluster tests"}}
	if !strings.Contains(err.Error(), "install it with `make deps`") || !strings.Contains(err.Error(), "Debian package nginx") {
		t.Fatalf("message %q", err)
	}
}

// TestEveryLookupIsListed reads the repository's Go source: a test that runs an external program
// finds it through this package (never exec.LookPath or exec.Command with a bare name), and every
// name it asks for is in the list, so `make deps` installs whatever the suite runs.
func TestEveryLookupIsListed(t *testing.T) {
	root := repoRoot(t)
	direct := regexp.MustCompile(`exec\.LookPath\(|exec\.Command\("[^/"]|exec\.CommandContext\([a-zA-Z]+, "[^/"]`)
	asked := regexp.MustCompile(`sysdeps\.(?:Require|Lookup)\((?:[a-zA-Z]+, )?"([^"]+)"\)`)
	listed := map[string]bool{}
	for _, p := range Programs() {
		listed[p.Name] = true
	}
	used := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (third_party's patched pion): its tests are not lwota's suite
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasPrefix(rel, filepath.Join("cmd", "testdeps")+string(filepath.Separator)) {
			return nil // this package and its command (apt-get) are the exception
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if direct.MatchString(line) {
				t.Errorf("%s:%d runs a program without sysdeps (use sysdeps.Require or sysdeps.Lookup): %s",
					rel, i+1, strings.TrimSpace(line))
			}
			for _, m := range asked.FindAllStringSubmatch(line, -1) {
				used[m[1]] = true
				if !listed[m[1]] {
					t.Errorf("%s:%d asks for %q, which is not in sysdeps' list", rel, i+1, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) == 0 {
		t.Fatal("found no sysdeps lookups at all: the scan is broken")
	}
}

// TestREADMENamesEveryPackage: the README's test section names each Debian package of the list.
func TestREADMENamesEveryPackage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "<!-- deps:start -->")
	end := strings.Index(text, "<!-- deps:end -->")
	if start < 0 || end < start {
		t.Fatal("README.md lacks the <!-- deps:start --> ... <!-- deps:end --> block listing the test packages")
	}
	block := text[start:end]
	var named []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9.+-]+)` \\|").FindAllStringSubmatch(block, -1) {
		named = append(named, m[1])
	}
	for _, pkg := range Packages() {
		if !slices.Contains(named, pkg) {
			t.Errorf("README's test packages lack %s", pkg)
		}
	}
	for _, n := range named {
		if !slices.Contains(Packages(), n) {
			t.Errorf("README names %s, which sysdeps does not list", n)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
