package registration_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

// BenchmarkUpdate guards the steady-state load of a fleet (issue 16): a registration Update
// that renews the lifetime and nothing else, through ServeCoAP, stored (a touch) in a real
// SQLite store before it returns. Devices update in parallel, as a server's workers do, so the
// store's group commit batches them as it does under load.
// The memory sub-benchmark keeps the registrations in a map instead: the registry's own CPU per
// Update (lookups, locks, the index), which the database's would drown.
func BenchmarkUpdate(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "reg.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchUpdate(b, st)
	})
	b.Run("memory", func(b *testing.B) { benchUpdate(b, &memStore{}) })
}

func benchUpdate(b *testing.B, st registration.Store) {
	const devices = 1024
	reg := registration.New(st, nil, registration.DefaultConfig(), nil, nil, nil)
	ids := make([]string, devices)
	peers := make([]transport.Peer, devices)
	for i := range devices {
		peers[i] = transport.Peer{Addr: transport.Addr{Network: transport.UDP,
			AddrPort: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10000+i))}}
		resp := reg.ServeCoAP(context.Background(), peers[i], request(transport.POST, "/rd", "</1/0>,</3/0>,</5/0>",
			fmt.Sprintf("ep=bench-%d", i), "lt=3600", "lwm2m=1.1", "b=U"))
		if resp.Code != transport.Created {
			b.Fatalf("register answered %s", resp.Code)
		}
		ids[i] = resp.LocationPath[1]
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // a server's workers, more than the 2 cores: the commits batch
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % devices
			req := transport.NewMessage(transport.POST)
			req.Path = "/rd/" + ids[i]
			if resp := reg.ServeCoAP(context.Background(), peers[i], req); resp.Code != transport.Changed {
				b.Errorf("update answered %s", resp.Code)
				return
			}
		}
	})
}

// BenchmarkExpireScan measures ExpireNow over 100,000 live registrations none of which has
// lapsed: the once-per-ExpiryInterval scan for lapsed lifetimes, which holds the registry's read
// lock (so Registers and Updates wait) for as long as it runs. ns/device is the scan's cost per
// live device.
func BenchmarkExpireScan(b *testing.B) {
	const devices = 100000
	reg := registration.New(&memStore{}, nil, registration.DefaultConfig(), nil, nil, nil)
	for i := range devices {
		p := transport.Peer{Addr: transport.Addr{Network: transport.UDP,
			AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5683)}}
		resp := reg.ServeCoAP(context.Background(), p, request(transport.POST, "/rd", "</1/0>,</3/0>", fmt.Sprintf("ep=scan-%d", i), "lt=3600"))
		if resp.Code != transport.Created {
			b.Fatalf("register answered %s", resp.Code)
		}
	}
	for b.Loop() {
		if n := reg.ExpireNow(context.Background()); n != 0 {
			b.Fatalf("%d lapsed", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/devices, "ns/device")
}
