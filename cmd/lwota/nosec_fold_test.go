package main

import (
	"net/netip"
	"testing"

	"github.com/lwota/lwota/server/transport"
)

// TestServeFoldsNoSecCheck checks the wiring of `lwota serve`: its credentials live in the
// registrations' store, so a NoSec Update's credential check is the store's touch
// (registration.NoSecFolder) and reads nothing before it; a DTLS peer's check is not folded.
func TestServeFoldsNoSecCheck(t *testing.T) {
	ts := startService(t, t.TempDir(), "")
	addr := netip.MustParseAddrPort("127.0.0.1:40000")
	for _, tc := range []struct {
		name string
		peer transport.Peer
		want bool
	}{
		{"NoSec", transport.Peer{Addr: transport.Addr{Network: transport.UDP, AddrPort: addr}}, true},
		{"DTLS", transport.Peer{Addr: transport.Addr{Network: transport.DTLS, AddrPort: addr}, Identity: "id-1"}, false},
	} {
		if got := ts.svc.core.FoldsNoSecCheck(tc.peer, ts.svc.store); got != tc.want {
			t.Errorf("%s: FoldsNoSecCheck = %v, want %v", tc.name, got, tc.want)
		}
	}
}
