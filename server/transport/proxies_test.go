package transport

import (
	"net/netip"
	"testing"
	"time"
)

// TestLimits_TrustedProxy: behind a UDP balancer every device has the balancer's address and a
// port of its own. Without TrustedProxies 20 such devices share one bucket and most are
// refused; with it each port is one device with its own bucket, and a device that floods is
// refused alone.
func TestLimits_TrustedProxy(t *testing.T) {
	const devices, each, burst = 20, 3, 5
	cases := []struct {
		name    string
		proxies []netip.Prefix
		// the requests handled, of devices*each
		minHandled, maxHandled int
	}{
		{"no trusted proxy: one bucket for all", nil, burst, burst},
		{"trusted proxy: a bucket per port", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, devices * each, devices * each},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := noExempt(0.001, burst) // no token comes back during the test
			cfg.TrustedProxies = tc.proxies
			h := contentHandler()
			ep := startEndpoint(t, h, cfg)
			peers := make([]*rawPeer, devices)
			for i := range peers {
				peers[i] = newRawPeer(t)
			}
			for i, p := range peers {
				for j := range each {
					p.send(ep.addr, datagram(t, typeCON, uint16(100+j), req(GET, "/3/0", byte(i), byte(j))))
				}
			}
			handled := 0
			for _, p := range peers {
				for _, f := range p.recvAll(200 * time.Millisecond) {
					if f.msg.Code == Content {
						handled++
					}
				}
			}
			if handled < tc.minHandled || handled > tc.maxHandled {
				t.Fatalf("%d devices x %d requests through one address: %d handled, want %d..%d",
					devices, each, handled, tc.minHandled, tc.maxHandled)
			}
			if tc.proxies == nil {
				return
			}
			// A flooding device behind the proxy is limited alone; its neighbours are not.
			flood, quiet := newRawPeer(t), newRawPeer(t)
			for j := range 4 * burst {
				flood.send(ep.addr, datagram(t, typeCON, uint16(500+j), req(GET, "/3/0", 0xf0, byte(j))))
			}
			got := 0
			for _, f := range flood.recvAll(200 * time.Millisecond) {
				if f.msg.Code == Content {
					got++
				}
			}
			if got != burst {
				t.Fatalf("flooding device: %d of %d handled, want its burst %d", got, 4*burst, burst)
			}
			quiet.send(ep.addr, datagram(t, typeCON, 900, req(GET, "/3/0", 0xf1)))
			if f := quiet.recvAll(200 * time.Millisecond); len(f) != 1 || f[0].msg.Code != Content {
				t.Fatalf("a quiet device next to the flooder: %+v, want one 2.05", f)
			}
		})
	}
}

// TestLimits_Block1PerIPTrustedProxy: behind a trusted proxy each port is one device, held to
// MaxBlock1PerPeer only; without it the proxy's address is held to MaxBlock1PerIP like any host.
func TestLimits_Block1PerIPTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		want    []Code // the answers to 4 devices' first blocks
	}{
		{"no trusted proxy", nil, []Code{Continue, Continue, ServiceUnavailable, ServiceUnavailable}},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, []Code{Continue, Continue, Continue, Continue}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := wireConfig()
			cfg.MaxBlock1PerIP = 2
			cfg.SourceExempt = []netip.Prefix{}
			cfg.ACKTimeout = time.Hour // nothing stalls, nothing gives way
			cfg.TrustedProxies = tc.proxies
			ep := startEndpoint(t, contentHandler(), cfg)
			for i, want := range tc.want {
				p := newRawPeer(t)
				p.send(ep.addr, datagram(t, typeCON, uint16(i), block1To("/up", 0, true, 0, make([]byte, 16))))
				if f := p.recvFrame(); f.msg.Code != want {
					t.Fatalf("transfer %d: %v, want %v", i, f.msg.Code, want)
				}
			}
		})
	}
}
