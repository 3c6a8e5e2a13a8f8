// Command testdeps checks that the system packages lwota's test suite runs are installed, and
// installs the missing ones with apt-get when it can (`make deps`); the list is package sysdeps.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

const usage = `usage: testdeps [install|check|packages]
  install   install the missing packages with apt-get (as root), else print the command and fail (default)
  check     list what is missing and fail if anything is
  packages  print the Debian packages the suite needs, one a line`

func main() {
	cmd := "install"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	os.Exit(run(cmd, os.Stdout, os.Stderr))
}

func run(cmd string, stdout, stderr io.Writer) int {
	switch cmd {
	case "packages":
		for _, p := range sysdeps.Packages() {
			fmt.Fprintln(stdout, p)
		}
		return 0
	case "check", "install":
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	missing := sysdeps.Missing()
	_, aptErr := exec.LookPath("apt-get")
	p := decide(missing, cmd == "install", os.Geteuid() == 0, aptErr == nil)
	if p.message != "" {
		fmt.Fprintln(stderr, p.message)
	}
	if len(p.install) == 0 {
		if p.fail {
			return 1
		}
		fmt.Fprintf(stdout, "testdeps: all %d system packages the suite needs are installed\n", len(sysdeps.Packages()))
		return 0
	}
	if err := aptInstall(p.install, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "testdeps: %v\n", err)
		return 1
	}
	if still := sysdeps.Missing(); len(still) > 0 {
		fmt.Fprintf(stderr, "testdeps: still missing after apt-get install: %s\n", describe(still))
		return 1
	}
	fmt.Fprintf(stdout, "testdeps: installed %s\n", strings.Join(p.install, " "))
	return 0
}

// plan is what testdeps does about the missing programs.
type plan struct {
	install []string // packages to install with apt-get now
	fail    bool     // stop with the message
	message string
}

// decide is the whole policy, kept apart from the machine so that it can be tested: install
// when asked, as root, with apt-get; otherwise name the one command that fixes it and fail.
func decide(missing []sysdeps.Program, install, root, haveApt bool) plan {
	if len(missing) == 0 {
		return plan{}
	}
	pkgs := packagesOf(missing)
	if install && root && haveApt {
		return plan{install: pkgs, message: "testdeps: installing " + strings.Join(pkgs, " ") + " for: " + describe(missing)}
	}
	var why string
	switch {
	case !install:
		why = "run `make deps`, or"
	case !haveApt:
		why = "this machine has no apt-get; on Debian or Ubuntu"
	default:
		why = "not root, so not installing them;"
	}
	return plan{fail: true, message: fmt.Sprintf(
		"testdeps: the test suite needs programs this machine lacks: %s\n%s run:\n  %s",
		describe(missing), why, Command(pkgs, root))}
}

// Command is the exact line that installs pkgs.
func Command(pkgs []string, root bool) string {
	sudo := "sudo "
	if root {
		sudo = ""
	}
	return sudo + "apt-get update && " + sudo + "apt-get install -y " + strings.Join(pkgs, " ")
}

func packagesOf(ps []sysdeps.Program) []string {
	var out []string
	for _, p := range ps {
		if !slices.Contains(out, p.Package) {
			out = append(out, p.Package)
		}
	}
	return out
}

func describe(ps []sysdeps.Program) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + " (" + p.Package + ")"
	}
	return strings.Join(parts, ", ")
}

func aptInstall(pkgs []string, stdout, stderr io.Writer) error {
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	update := exec.Command("apt-get", "update", "-qq")
	update.Env, update.Stdout, update.Stderr = env, stdout, stderr
	if err := update.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	install := exec.Command("apt-get", append([]string{"install", "-y", "-qq"}, pkgs...)...)
	install.Env, install.Stdout, install.Stderr = env, io.Discard, stderr
	if err := install.Run(); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}
