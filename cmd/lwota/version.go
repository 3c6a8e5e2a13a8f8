package main

import (
	"runtime/debug"
)

// version is set by the linker in release builds (-ldflags "-X main.version=v1.2.3"); otherwise
// buildVersion reads it from what the Go toolchain stamped into the binary.
var version = ""

// buildVersion is the version lwota reports (`lwota version`, --version, the User-Agent): the
// linker's, else the module version (`go install ...@v1.2.3`, or the pseudo-version Go derives
// from the checkout), else the VCS revision of the checkout it was built from, "-dirty" when
// it had uncommitted changes, else "dev" (go run, or a build with -buildvcs=false).
func buildVersion(linked string, info *debug.BuildInfo, ok bool) string {
	if linked != "" {
		return linked
	}
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// lwotaVersion is this binary's version.
func lwotaVersion() string {
	info, ok := debug.ReadBuildInfo()
	return buildVersion(version, info, ok)
}
