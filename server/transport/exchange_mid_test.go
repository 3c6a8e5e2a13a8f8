package transport

import (
	"net/netip"
	"testing"
)

// TestMidTableReseedLeavesRecentIDs: after a reseed, the next 8,000 message ids to the peer
// stay clear of the last 16,384 ids of the old sequence, which the peer may still remember.
func TestMidTableReseedLeavesRecentIDs(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.1:5683")
	tab := newMidTable()
	for i := range 2000 {
		old := tab.next(to, 0) // the old sequence's latest id
		tab.reseed(to)
		first := tab.next(to, 0)
		for k := uint16(0); k < 8000; k += 97 {
			id := first + k
			if back := old - id; back < 16384 { // id is among old-16383..old
				t.Fatalf("round %d: id %d after the reseed is %d ids behind the old sequence's %d", i, id, back, old)
			}
		}
	}
}
