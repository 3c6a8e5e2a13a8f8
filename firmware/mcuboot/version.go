package mcuboot

import (
	"strconv"
	"strings"
)

// version is an MCUboot image version: ih_ver's four fields.
type version struct {
	major, minor uint8
	revision     uint16
	build        uint32
}

// VersionMatches reports whether the image's embedded version is the declared one. declared is
// "major.minor.revision" (any build number matches) or "major.minor.revision+build" (the build
// must match too). Fields compare as numbers, never as text: "1.2.3" matches neither "1.2.30"
// nor "1.2.3.4", and malformed declarations (missing fields, signs, leading zeros, values
// beyond the header's field widths) match nothing.
func VersionMatches(info *Info, declared string) bool {
	if info == nil {
		return false
	}
	have, haveBuild, ok := parseVersion(info.Version)
	if !ok || !haveBuild {
		return false
	}
	want, wantBuild, ok := parseVersion(declared)
	if !ok {
		return false
	}
	if !wantBuild {
		have.build, want.build = 0, 0
	}
	return have == want
}

// parseVersion reads "M.m.r" or "M.m.r+b"; hasBuild tells which.
func parseVersion(s string) (v version, hasBuild bool, ok bool) {
	core, build, hasBuild := strings.Cut(s, "+")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return version{}, false, false
	}
	major, ok1 := field(parts[0], 8)
	minor, ok2 := field(parts[1], 8)
	rev, ok3 := field(parts[2], 16)
	if !ok1 || !ok2 || !ok3 {
		return version{}, false, false
	}
	v = version{major: uint8(major), minor: uint8(minor), revision: uint16(rev)}
	if hasBuild {
		b, ok := field(build, 32)
		if !ok {
			return version{}, false, false
		}
		v.build = uint32(b)
	}
	return v, hasBuild, true
}

// field parses one canonical decimal field: ASCII digits only, no sign, no leading zero.
func field(s string, bits int) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, bits)
	return n, err == nil
}
