package registration

import "strings"

// Firmware versions are compared the way release engineers read them: 1.10.0 is newer than
// 1.9.0. VersionKey turns a version into text whose byte order is that order, so that a store
// compares and sorts versions with plain string comparison (and an index).
//
// A version that VersionKey understands is, after an optional "v" or "V":
//   - one to four dot-separated numbers (1, 1.4, 1.4.2, 1.4.2.7; missing parts count as 0, so
//     1.4 and 1.4.0 have the same key), each at most 18 digits, leading zeros ignored;
//   - optionally a pre-release, "-" and dot-separated identifiers of [0-9A-Za-z-]: it comes
//     before the release (1.4.2-rc.1 < 1.4.2), and identifiers compare as in SemVer 2.0.0
//     (numbers numerically and before words, words by ASCII, fewer identifiers first);
//   - optionally build metadata, "+" and anything: ignored, as SemVer says.
//
// Anything else (2024-build7, "abc", "", or over MaxVersionLen bytes) has no key: it is never
// less or greater than another version, only equal or not equal to its exact text.

// MaxVersionLen bounds the versions VersionKey reads (and so the length of a key).
const MaxVersionLen = 256

// maxVersionParts is how many numbers a version may have; keys pad to it so that they compare
// part by part.
const maxVersionParts = 4

// maxNumberDigits keeps each number within an int64 and its length within one decimal digit.
const maxNumberDigits = 18

// VersionKey returns the sortable key of v, and false when v is not a version it understands.
func VersionKey(v string) (string, bool) {
	if len(v) > MaxVersionLen {
		return "", false
	}
	s := v
	if s != "" && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if i == len(s)-1 {
			return "", false // "+" with no build metadata
		}
		s = s[:i]
	}
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) > maxVersionParts {
		return "", false
	}
	var b strings.Builder
	for i := range maxVersionParts {
		n := "0"
		if i < len(parts) {
			n = parts[i]
		}
		d, ok := number(n)
		if !ok {
			return "", false
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(d)
	}
	if !hasPre {
		b.WriteByte('~') // after every pre-release marker ('!'): a release follows its pre-releases
		return b.String(), true
	}
	if pre == "" {
		return "", false
	}
	b.WriteByte('!')
	for i, id := range strings.Split(pre, ".") {
		if id == "" {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',') // below every identifier byte: fewer identifiers sort first
		}
		if d, ok := number(id); ok {
			b.WriteByte('#') // numbers before words ('+')
			b.WriteString(d)
			continue
		}
		for j := 0; j < len(id); j++ {
			c := id[j]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return "", false
			}
		}
		b.WriteByte('+')
		b.WriteString(id)
	}
	return b.String(), true
}

// number encodes a decimal number so that text order is numeric order: its digit count as a
// letter (a: 1 digit, b: 2, ...), then its digits without leading zeros ("10" is "b10", "9" is
// "a9", "0" is "a0").
func number(s string) (string, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return "", false
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		s = "0"
	}
	if len(s) > maxNumberDigits {
		return "", false
	}
	return string(rune('a'+len(s)-1)) + s, true
}
