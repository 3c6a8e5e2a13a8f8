package main

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// withForwardedFor makes the client address of a request relayed by a trusted proxy (see
// --trusted-proxies) the one the proxy names: the right-most X-Forwarded-For entry that is not
// itself a trusted proxy, else X-Real-IP. Everything behind it (the audit log's remote address,
// the HTTP pull's address check) reads r.RemoteAddr. From any other peer the two headers are
// removed: a client must not be able to claim another address by sending them itself.
func withForwardedFor(next http.Handler, trusted []netip.Prefix) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !inPrefixes(trusted, peer.Addr()) {
			r.Header.Del("X-Forwarded-For")
			r.Header.Del("X-Real-IP")
			next.ServeHTTP(w, r)
			return
		}
		if ip, ok := forwardedClient(r.Header, trusted); ok {
			r2 := r.Clone(r.Context())
			r2.RemoteAddr = net.JoinHostPort(ip.String(), "0")
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// forwardedClient is the client a chain of trusted proxies names: walking X-Forwarded-For from
// the right (the entry the nearest proxy appended), the first address that is not a trusted
// proxy; with no X-Forwarded-For, X-Real-IP. A malformed entry ends the walk: what is left of it
// was written by someone untrusted.
func forwardedClient(h http.Header, trusted []netip.Prefix) (netip.Addr, bool) {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var last netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		last = a.Unmap()
		if !inPrefixes(trusted, last) {
			return last, true
		}
	}
	if last.IsValid() {
		return last, true // every hop a trusted proxy: the left-most one is the closest to the client
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(h.Get("X-Real-IP"))); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
