package selector

import "strings"

// CompareVersions orders firmware versions for <, <=, > and >=, and returns -1, 0 or +1.
// Versions are split at dots and compared segment by segment from the left. Two segments made
// only of digits compare as numbers ("1.10" > "1.9", "01" = "1"); any other pair compares
// byte by byte ("1.4.b" > "1.4.a", and "2-rc1" > "2", so pre-release suffixes are NOT ordered
// as in semver). When one version runs out of segments first, it is the smaller ("1.4" <
// "1.4.0").
func CompareVersions(a, b string) int {
	for {
		as, arest, aok := strings.Cut(a, ".")
		bs, brest, bok := strings.Cut(b, ".")
		if c := compareSegment(as, bs); c != 0 {
			return c
		}
		switch {
		case !aok && !bok:
			return 0
		case !aok:
			return -1
		case !bok:
			return 1
		}
		a, b = arest, brest
	}
}

func compareSegment(a, b string) int {
	if !numeric(a) || !numeric(b) {
		return strings.Compare(a, b)
	}
	// Numbers of any length: drop leading zeros, then the longer is larger, else compare digits.
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func numeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
