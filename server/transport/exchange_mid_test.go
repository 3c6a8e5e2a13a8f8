package transport

import (
	"context"
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestMidTableReseedLeavesRecentIDs: after a reseed, the next 8,000 message ids to the peer
// stay clear of the last 16,384 ids of the old sequence, which the peer may still remember.
func TestMidTableReseedLeavesRecentIDs(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.1:5683")
	tab := newMidTable(0, 247*time.Second)
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

// TestMidTableNodeRanges: two cluster nodes reaching one device (through a balancer, from one
// address as the device sees it) never send it the same message id, whatever their random
// starts, as long as each sends it fewer than a range's spare ids within EXCHANGE_LIFETIME. With
// random starts over all 65,536 ids, 300 ids each collide in about one round of 110.
func TestMidTableNodeRanges(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.1:5683")
	const sent = 300
	for _, tc := range []struct {
		name string
		a, b uint16
	}{
		{"nodes 1 and 2", 1, 2},
		{"nodes 1 and 16", 1, 16},
		{"nodes 16 and 1", 16, 1},
		{"nodes 7 and 40", 7, 40}, // 40 takes range 39%16 = 7, node 7 range 6
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2000 {
				a, b := newMidTable(tc.a, 247*time.Second), newMidTable(tc.b, 247*time.Second)
				seen := make(map[uint16]bool, sent)
				for range sent {
					seen[a.next(to, 0)] = true
				}
				for k := range sent {
					if id := b.next(to, 0); seen[id] {
						t.Fatalf("round %d: node %d's id %d (its %dth) was node %d's too", round, tc.b, id, k+1, tc.a)
					}
				}
			}
		})
	}
}

// TestMidTableNodeReseed: a cluster node's reseed moves 1,024 to 2,047 ids ahead, so the ids
// of the old sequence are not sent again, and a fresh sequence starts in the node's range.
func TestMidTableNodeReseed(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.1:5683")
	for node := uint16(1); node <= 40; node++ {
		tab := newMidTable(node, 247*time.Second)
		base := uint16((int(node)-1)%midRanges) * midRangeSize
		first := tab.next(to, 0)
		if off := first - base; off >= midStartSpan {
			t.Fatalf("node %d starts at %d, %d ids into its range at %d (want < %d)", node, first, off, base, midStartSpan)
		}
		for range 100 {
			old := tab.next(to, 0)
			tab.reseed(to)
			if ahead := tab.next(to, 0) - old; ahead <= midReseedMin || ahead > 2*midReseedMin {
				t.Fatalf("node %d: reseed moved %d ids on from %d, want %d..%d", node, ahead, old, midReseedMin+1, 2*midReseedMin)
			}
		}
	}
}

// TestDo_ClusterNodeMessageIDs: Config.NodeID reaches the ids Do sends: node 3's requests to a
// peer it never talked to start in its range (8192..11263).
func TestDo_ClusterNodeMessageIDs(t *testing.T) {
	cfg := testConfig()
	cfg.NodeID = 3
	cli := startEndpoint(t, nil, cfg)
	for range 5 {
		dev := newRawPeer(t)
		done := make(chan error, 1)
		go func() {
			_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/3/0"))
			done <- err
		}()
		f := dev.recvFrame()
		if f.mid < 2*midRangeSize || f.mid >= 2*midRangeSize+midStartSpan {
			t.Fatalf("node 3's first id to a new peer is %d, outside %d..%d", f.mid, 2*midRangeSize, 2*midRangeSize+midStartSpan-1)
		}
		ok := NewMessage(Content)
		ok.Token = f.msg.Token
		dev.send(cli.addr, datagram(t, typeACK, f.mid, ok))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestMidTableNodeStartsMoveOn: a node's sequence to a device that shows up at a new address
// (the balancer's new session after a reload: the device keeps its duplicate cache) or to a
// device after the node restarted starts past the ids of its earlier sequence, which the
// device still remembers: starts follow the wall clock. With random starts in the node's
// 3,072-id span, 20 ids each would collide in about one round of 40.
func TestMidTableNodeStartsMoveOn(t *testing.T) {
	p := netip.MustParseAddrPort("192.0.2.1:40000")
	p2 := netip.MustParseAddrPort("192.0.2.1:40001")
	const sent, later = 20, 10 * time.Second
	for _, tc := range []struct {
		name    string
		restart bool
		to      netip.AddrPort
	}{
		{"new address", false, p2},
		{"restart", true, p},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2000 {
				now := time.Unix(1_700_000_000, 0).Add(time.Duration(mrand.Int64N(int64(time.Hour))))
				clock := func() time.Time { return now }
				old := newMidTable(3, 247*time.Second)
				old.clock = clock
				seen := map[uint16]bool{}
				for range sent {
					seen[old.next(p, 0)] = true
				}
				now = now.Add(later)
				tab := old
				if tc.restart {
					tab = newMidTable(3, 247*time.Second)
					tab.clock = clock
				}
				for k := range sent {
					if id := tab.next(tc.to, 0); seen[id] {
						t.Fatalf("round %d: id %d, number %d of the sequence started %v later, was sent before", round, id, k+1, later)
					}
				}
			}
		})
	}
}
