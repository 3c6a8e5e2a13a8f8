package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

func TestDecide(t *testing.T) {
	coap := sysdeps.Program{Name: "coap-client-notls", Package: "libcoap3-bin"}
	coaps := sysdeps.Program{Name: "coap-client-openssl", Package: "libcoap3-bin"}
	pg := sysdeps.Program{Name: "initdb", Package: "postgresql"}
	tests := []struct {
		name             string
		missing          []sysdeps.Program
		install, root    bool
		apt              bool
		wantInstall      []string
		wantFail         bool
		wantMessageParts []string
	}{
		{name: "nothing missing", install: true, root: false, apt: true},
		{name: "root with apt installs, one package once", missing: []sysdeps.Program{coap, coaps, pg},
			install: true, root: true, apt: true, wantInstall: []string{"libcoap3-bin", "postgresql"}},
		{name: "not root names the exact command", missing: []sysdeps.Program{coap, pg}, install: true, apt: true,
			wantFail: true, wantMessageParts: []string{"not root",
				"sudo apt-get update && sudo apt-get install -y libcoap3-bin postgresql", "coap-client-notls (libcoap3-bin)"}},
		{name: "root without apt-get", missing: []sysdeps.Program{pg}, install: true, root: true,
			wantFail: true, wantMessageParts: []string{"no apt-get", "apt-get install -y postgresql"}},
		{name: "check never installs", missing: []sysdeps.Program{pg}, install: false, root: true, apt: true,
			wantFail: true, wantMessageParts: []string{"make deps", "apt-get update && apt-get install -y postgresql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decide(tt.missing, tt.install, tt.root, tt.apt)
			if strings.Join(p.install, " ") != strings.Join(tt.wantInstall, " ") {
				t.Errorf("install = %q, want %q", p.install, tt.wantInstall)
			}
			if p.fail != tt.wantFail {
				t.Errorf("fail = %v, want %v (message %q)", p.fail, tt.wantFail, p.message)
			}
			for _, part := range tt.wantMessageParts {
				if !strings.Contains(p.message, part) {
					t.Errorf("message %q lacks %q", p.message, part)
				}
			}
		})
	}
}

func TestRunRefusesUnknownCommand(t *testing.T) {
	var out, errOut strings.Builder
	if code := run("frobnicate", &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}

func TestRunPackagesListsEveryPackage(t *testing.T) {
	var out, errOut strings.Builder
	if code := run("packages", &out, &errOut); code != 0 {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
	if got, want := strings.Fields(out.String()), sysdeps.Packages(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("packages printed %q, want %q", got, want)
	}
}

// TestMain lets TestNotRootStopsWithTheCommand run this test binary as the command itself.
func TestMain(m *testing.M) {
	if os.Getenv("LWOTA_TESTDEPS_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestNotRootStopsWithTheCommand runs the command as a user who is not root, on a PATH with
// nothing on it: it must stop at once, with exit code 1 and the exact apt-get line.
func TestNotRootStopsWithTheCommand(t *testing.T) {
	// Not t.TempDir: its parent is private to root, and the command runs as nobody.
	dir, err := os.MkdirTemp("", "testdeps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "testdeps")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"env", "PATH=/nonexistent", "LWOTA_TESTDEPS_AS_MAIN=1", bin, "install"}
	if os.Geteuid() == 0 {
		args = append([]string{sysdeps.Require(t, "runuser"), "-u", "nobody", "--"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want code 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "sudo apt-get update && sudo apt-get install -y ") ||
		!strings.Contains(string(out), "libcoap3-bin") {
		t.Fatalf("output lacks the apt-get line naming libcoap3-bin:\n%s", out)
	}
}
