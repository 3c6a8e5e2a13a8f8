package registration_test

import (
	"strings"
	"testing"

	"github.com/lwota/lwota/server/registration"
)

// TestVersionKeyOrder: each version's key sorts strictly before the next one's.
func TestVersionKeyOrder(t *testing.T) {
	ordered := []string{
		"0.0.1",
		"0.9",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.0.1",
		"1.4.2",
		"1.9.0",
		"1.10.0",
		"2",
		"10.0.0",
		"999999999999999999.0",
	}
	var prev string
	for i, v := range ordered {
		k, ok := registration.VersionKey(v)
		if !ok {
			t.Fatalf("VersionKey(%q): not a version", v)
		}
		if i > 0 && !(prev < k) {
			t.Errorf("key of %q (%q) does not sort after that of %q (%q)", v, k, ordered[i-1], prev)
		}
		prev = k
	}
}

func TestVersionKeyEqual(t *testing.T) {
	for _, c := range [][2]string{
		{"1.4", "1.4.0"},
		{"1.4.0", "1.4.0.0"},
		{"v1.4.2", "1.4.2"},
		{"V1.4.2", "1.4.2"},
		{"01.004.2", "1.4.2"},
		{"1.4.2+build.7", "1.4.2"},
		{"1.4.2-rc.01", "1.4.2-rc.1"},
	} {
		a, aok := registration.VersionKey(c[0])
		b, bok := registration.VersionKey(c[1])
		if !aok || !bok || a != b {
			t.Errorf("VersionKey(%q) = %q %v, VersionKey(%q) = %q %v: want the same key", c[0], a, aok, c[1], b, bok)
		}
	}
}

func TestVersionKeyRefuses(t *testing.T) {
	for _, v := range []string{
		"", "v", "abc", "2024_build7", "release-7", "1..2", ".1", "1.", "1.2.3.4.5", "1.2.3-", "1.2.3-rc..1",
		"1.2.3-rc_1", "1.2.3+", "1.x", "-1", "1.2.3 ", " 1.2.3", "1234567890123456789",
		"１.2", // fullwidth digit
	} {
		if k, ok := registration.VersionKey(v); ok {
			t.Errorf("VersionKey(%q) = %q, want no key", v, k)
		}
	}
}

// FuzzVersionKey: keys are printable ASCII, "v" changes nothing, and a version's key sorts
// after the key of the same version as a pre-release.
func FuzzVersionKey(f *testing.F) {
	for _, s := range []string{"1.4.2", "v1.10.0-rc.1+b7", "1.0.0-alpha.beta", "01.2", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		k, ok := registration.VersionKey(v)
		if !ok {
			return
		}
		for i := 0; i < len(k); i++ {
			if k[i] < '!' || k[i] > '~' {
				t.Fatalf("VersionKey(%q) = %q: byte %#x is not printable ASCII", v, k, k[i])
			}
		}
		// A version over MaxVersionLen bytes has no key, so the variants below must fit too.
		if v[0] != 'v' && v[0] != 'V' && len(v)+1 <= registration.MaxVersionLen {
			if kv, ok := registration.VersionKey("v" + v); !ok || kv != k {
				t.Fatalf("VersionKey(v%s) = %q %v, want %q", v, kv, ok, k)
			}
		}
		if !strings.ContainsAny(v, "-+") && len(v)+len("-rc") <= registration.MaxVersionLen {
			if pre, ok := registration.VersionKey(v + "-rc"); !ok || !(pre < k) {
				t.Fatalf("VersionKey(%s-rc) = %q %v, want less than %q", v, pre, ok, k)
			}
		}
	})
}
