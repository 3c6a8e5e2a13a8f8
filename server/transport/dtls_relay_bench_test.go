package transport

import (
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// BenchmarkDTLSRelayRoundTrip: sequential CoAP round trips of two DTLS sessions with node A
// through a balancer: one stays on A (the baseline), the other's NAT rebinds so its records
// reach node B and go through the relay. Batches alternate between the two so that the load of
// the machine weighs on both alike; reports both rates and relayed/direct.
func BenchmarkDTLSRelayRoundTrip(b *testing.B) {
	c := startCluster(b, fwHandler(nil, nil, nil))
	lb := startBalancer(b, func(flow int) int { return map[bool]int{true: 0, false: 1}[flow < 2] }, c.a.addr.AddrPort, c.b.addr.AddrPort)
	dial := func() (*dtls.Conn, *natConn) {
		nat := newNATConn(b)
		cl, err := dialDTLS(b, Addr{Network: DTLS, AddrPort: lb.addr()}, "dev1", "secretkey123", nat,
			dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cl.Close() })
		return cl, nat
	}
	direct, _ := dial()
	relayed, nat := dial()
	nat.rebind() // the third flow: to B
	mid := uint16(0)
	roundTrips := func(cl *dtls.Conn, n int) time.Duration {
		start := time.Now()
		for range n {
			mid++
			d, err := encode(nil, typeCON, mid, req(POST, "/rd", 1))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cl.Write(d); err != nil {
				b.Fatal(err)
			}
			if f := readFrame(b, cl); f.mid != mid {
				b.Fatalf("answer %+v", f)
			}
		}
		return time.Since(start)
	}
	const batch = 50
	n := max(b.N/batch, 4)
	var td, tr time.Duration
	b.ResetTimer()
	for range n {
		td += roundTrips(direct, batch)
		tr += roundTrips(relayed, batch)
	}
	b.StopTimer()
	if got := lb.backendsPicked(); len(got) != 3 || got[2] != 1 {
		b.Fatalf("flows %v: the rebinding did not move the second session to B", got)
	}
	if out := c.b.counter(b, "lwota_cluster_forwarded_records_total", "direction", "out"); out < float64(n*batch) {
		b.Fatalf("%v records forwarded, want %d", out, n*batch)
	}
	rate := func(d time.Duration) float64 { return float64(n*batch) / d.Seconds() }
	b.ReportMetric(rate(td), "direct_rt/s")
	b.ReportMetric(rate(tr), "relayed_rt/s")
	b.ReportMetric(rate(tr)/rate(td), "ratio_relayed_to_direct")
}
