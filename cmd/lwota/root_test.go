package main

import (
	"bytes"
	"context"
	gobuild "go/build"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// runExit runs one command line as main does and returns its exit status and output.
func runExit(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = runMain(ctx, args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// closedPort is the URL of a loopback port nobody listens on any more.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestExitCodes: each class of failure has its own exit status, against a real lwota (and, for
// the server class, a server that answers 500).
func TestExitCodes(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-unsigned")
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error": {"code": "internal", "message": "database is down"}}`))
	}))
	defer failing.Close()
	fw := writeFile(t, "fw.bin", []byte("LWOTA-FW 1.0.1\nfirmware"))
	admin := map[string]string{"LWOTA_SERVER": ts.base, "LWOTA_TOKEN": testAdminToken}
	for _, v := range []string{"1.0.1", "1.0.2"} { // two ids that start alike (ULIDs of the same minute)
		if code, _, stderr := runExit(t, admin, "image", "push", "--file", fw, "--version", v, "--model", "X"); code != exitOK {
			t.Fatalf("push %s: exit %d: %s", v, code, stderr)
		}
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want int
		msg  string // in stderr
	}{
		{"help", admin, []string{"image", "push", "-h"}, exitOK, ""},
		{"usage: unknown flag", admin, []string{"image", "list", "--bogus"}, exitUsage, "Run 'lwota image list --help' for usage."},
		{"usage: missing argument", admin, []string{"update", "status"}, exitUsage, "give the device's endpoint name"},
		{"usage: unknown command", admin, []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"usage: a bad value of a flag set's flag", admin, []string{"sim", "--count", "0"}, exitUsage, "--count must be at least 1"},
		{"usage: an unknown flag of a flag set", admin, []string{"serve", "--no-such-flag"}, exitUsage, "flag provided but not defined"},
		{"usage: an ambiguous id prefix", admin, []string{"image", "show", "0"}, exitUsage, "give more of it"},
		{"usage: bad output format", admin, []string{"image", "list", "-o", "xml"}, exitUsage, "want json, yaml or table"},
		{"usage: the server refuses the request's form (400)", admin, []string{"token", "create", "--name", "x", "--role", "emperor"}, exitUsage, "400"},
		{"not found: an unknown device", admin, []string{"update", "status", "no-such-device"}, exitNotFound, "404"},
		{"not found: an unknown image", admin, []string{"image", "show", "01JZZZZZZZZZZZZZZZZZZZZZZZ"}, exitNotFound, "404"},
		{"conflict: a duplicate version", admin, []string{"image", "push", "--file", fw, "--version", "1.0.1", "--model", "X"}, exitConflict, "409 duplicate_version"},
		{"auth: an unknown token", map[string]string{"LWOTA_SERVER": ts.base, "LWOTA_TOKEN": "lwota_nobody"}, []string{"image", "list"}, exitAuth, "401"},
		{"auth: no token", map[string]string{"LWOTA_SERVER": ts.base}, []string{"token", "list"}, exitAuth, "401"},
		{"network: a closed port", map[string]string{"LWOTA_SERVER": closedPort(t)}, []string{"image", "list"}, exitNetwork, "connection refused"},
		{"network: a name that does not resolve", map[string]string{"LWOTA_SERVER": "http://lwota.invalid"}, []string{"key", "list"}, exitNetwork, "lwota.invalid"},
		{"server: 500", map[string]string{"LWOTA_SERVER": failing.URL}, []string{"campaign", "list"}, exitServer, "500 internal: database is down"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runExit(t, tt.env, tt.args...)
			if code != tt.want || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, want %d; stderr %q, want it to hold %q", code, tt.want, stderr, tt.msg)
			}
		})
	}
}

// TestHelpExitsZero: -h, --help and help print the help on stdout and succeed, on every kind of
// command, the ones with their own flag sets too.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"help", "update"}, {"update", "help"}, {"image", "push", "-h"},
		{"campaign", "watch", "--help"}, {"token", "create", "-h"}, {"completion", "bash", "-h"},
		{"serve", "-h"}, {"sim", "--help"}, {"bench", "-h"}, {"bench", "pull", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runExit(t, nil, args...)
			if code != exitOK || stdout+stderr == "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}
	// The flag set commands print their own flags for help too, not a stub.
	if code, stdout, stderr := runExit(t, nil, "help", "sim"); code != exitOK || !strings.Contains(stdout+stderr, "-fail-ratio") {
		t.Fatalf("help sim: exit %d, no flags in %q", code, stdout+stderr)
	}
	code, stdout, _ := runExit(t, nil, "--help")
	if code != exitOK || !strings.Contains(stdout, "Exit status:") || !strings.Contains(stdout, "6  network") {
		t.Fatalf("lwota --help does not document the exit statuses:\n%s", stdout)
	}
}

// TestCompletion: cobra's completion scripts for the four shells.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_lwota", "zsh": "#compdef lwota", "fish": "complete -c lwota",
		"powershell": "Register-ArgumentCompleter"} {
		code, stdout, stderr := runExit(t, nil, "completion", shell)
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, no %q in the script", shell, code, stderr, want)
		}
	}
}

func TestBuildVersion(t *testing.T) {
	info := func(version string, settings ...debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/lwota/lwota", Version: version}, Settings: settings}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	for _, tt := range []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"the linker's", "v1.2.3", info("v0.0.0-x"), "v1.2.3"},
		{"go install @version", "", info("v1.4.0"), "v1.4.0"},
		{"a checkout", "", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "false"}), "0123456789ab"},
		{"a modified checkout", "", info("(devel)", rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "0123456789ab-dirty"},
		{"nothing known", "", info("(devel)"), "dev"},
		{"no build info", "", nil, "dev"},
	} {
		if got := buildVersion(tt.linked, tt.info, tt.info != nil); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestVersionOfABuiltBinary builds lwota from a clone of this checkout, as a user would, and
// checks that `lwota version` and `lwota --version` name the commit, not "dev". (A clone, because
// the go command stamps no VCS information in a git worktree, whose .git is a file.) The same
// binary shows that the exit status reaches the shell.
func TestVersionOfABuiltBinary(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	if testing.Short() {
		t.Skip("builds lwota")
	}
	git := sysdeps.Require(t, "git")
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	head, err := exec.Command(git, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "lwota")
	if b, err := exec.Command(git, "clone", "--quiet", "--shared", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, b)
	}
	bin := filepath.Join(t.TempDir(), "lwota")
	// The go command of the toolchain this test was built with. -trimpath keeps the clone's
	// directory, new each run, out of the build cache's keys: without it every package of this
	// module was compiled again each run (most of this test's minute of CPU). It changes no VCS
	// stamp, which is what this test reads.
	build := exec.Command(filepath.Join(gobuild.Default.GOROOT, "bin", "go"), "build", "-buildvcs=true", "-trimpath", "-o", bin, "./cmd/lwota")
	build.Dir = clone
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	rev := strings.TrimSpace(string(head))[:12]
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.HasPrefix(string(out), "lwota ") || strings.Contains(string(out), "dev") || !strings.Contains(string(out), rev) {
			t.Errorf("lwota %s: %q (%v), want the commit %s", arg, out, err, rev)
		}
	}
	cmd := exec.Command(bin, "image", "list", "--server", closedPort(t))
	cmd.Env = []string{"HOME=" + t.TempDir()}
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != exitNetwork {
		t.Errorf("image list on a closed port: %v, want exit status %d", err, exitNetwork)
	}
}
