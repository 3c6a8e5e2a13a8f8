package registration_test

import (
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// TestAddressBelongsToItsLastRegistrant: a registration names its device's address only until
// another device registers or updates from that address (the first device restarted from a new
// port, and the kernel gave its old one to the second). The first then has no address (it is
// away) until its own next Register or Update, and a restart that loads both stored rows gives
// the address to the newer one.
func TestAddressBelongsToItsLastRegistrant(t *testing.T) {
	tests := []struct {
		name string
		// take makes dev-b take dev-a's address 40000; dev-b registered first from 40001.
		take func(f *fixture)
	}{
		{"register from it", func(f *fixture) {
			f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-b"))
		}},
		{"update from it", func(f *fixture) {
			b, _ := f.reg.Get("dev-b")
			f.do(peer(40000, ""), request(transport.POST, "/rd/"+b.ID, ""))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-a"))
			f.do(peer(40001, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-b"))
			f.clock.Add(time.Second)
			tc.take(f)

			a, _ := f.reg.Get("dev-a")
			b, _ := f.reg.Get("dev-b")
			if a.HasAddr() {
				t.Fatalf("dev-a still names %s, which dev-b now talks from", a.Addr)
			}
			if a.Addr.Network != transport.UDP {
				t.Fatalf("dev-a's network went too: %+v", a.Addr)
			}
			if b.Addr != peer(40000, "").Addr {
				t.Fatalf("dev-b at %s", b.Addr)
			}
			if reg, ok := f.reg.ByPeer(peer(40000, "")); !ok || reg.Endpoint != "dev-b" {
				t.Fatalf("ByPeer(40000) = %+v, %v; want dev-b", reg, ok)
			}

			// A restart loads both rows (the stored one of dev-a names 40000 still): the newer
			// row, dev-b's, keeps it.
			f.open(t)
			a, _ = f.reg.Get("dev-a")
			b, _ = f.reg.Get("dev-b")
			if a.HasAddr() || b.Addr != peer(40000, "").Addr {
				t.Fatalf("after a restart dev-a at %s, dev-b at %s; want none and 127.0.0.1:40000", a.Addr, b.Addr)
			}

			// dev-a's Update from its new port gives it an address again.
			f.clock.Add(time.Second)
			f.do(peer(40002, ""), request(transport.POST, "/rd/"+a.ID, ""))
			if a, _ = f.reg.Get("dev-a"); a.Addr != peer(40002, "").Addr {
				t.Fatalf("dev-a after its Update at %s", a.Addr)
			}
		})
	}
}
