package main

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// The client address is taken from X-Forwarded-For / X-Real-IP only when a trusted proxy sent
// them; anyone else's headers are removed.
func TestWithForwardedFor(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	cases := []struct {
		name, peer, xff, xri string
		want                 string // RemoteAddr seen behind the middleware
	}{
		{"direct, no headers", "192.0.2.1:4000", "", "", "192.0.2.1:4000"},
		{"untrusted peer claims another address", "192.0.2.1:4000", "198.51.100.7", "198.51.100.8", "192.0.2.1:4000"},
		{"trusted proxy", "10.0.0.5:4000", "198.51.100.7", "", "198.51.100.7:0"},
		{"chain: the right-most untrusted hop", "10.0.0.5:4000", "203.0.113.9, 198.51.100.7, 10.0.0.6", "", "198.51.100.7:0"},
		{"trusted proxy, X-Real-IP", "10.0.0.5:4000", "", "198.51.100.8", "198.51.100.8:0"},
		{"trusted proxy, garbage", "10.0.0.5:4000", "not-an-ip", "", "10.0.0.5:4000"},
		{"trusted proxy, no headers", "10.0.0.5:4000", "", "", "10.0.0.5:4000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			var gotXFF string
			h := withForwardedFor(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got, gotXFF = r.RemoteAddr, r.Header.Get("X-Forwarded-For")
			}), trusted)
			r := httptest.NewRequest("GET", "/fw/x", nil)
			r.RemoteAddr = tc.peer
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.xri != "" {
				r.Header.Set("X-Real-IP", tc.xri)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Fatalf("RemoteAddr %q, want %q", got, tc.want)
			}
			if peer := netip.MustParseAddrPort(tc.peer); !inPrefixes(trusted, peer.Addr()) && gotXFF != "" {
				t.Fatalf("an untrusted peer's X-Forwarded-For reached the handler: %q", gotXFF)
			}
		})
	}
}
