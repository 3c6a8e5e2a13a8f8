package transport

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// newRawPeerOn is newRawPeer bound to ip (127.0.0.2 and the like are loopback too on Linux).
func newRawPeerOn(t *testing.T, ip net.IP) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatalf("listen on %v: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c}
}

// bodyHandler answers 2.04 and keeps the bodies it was given, by path.
type bodyHandler struct {
	mu     sync.Mutex
	bodies map[string][]byte
}

func (h *bodyHandler) ServeCoAP(_ context.Context, _ Peer, r *Message) *Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bodies[r.Path] = append([]byte(nil), r.Payload...)
	return NewMessage(Changed)
}

func (h *bodyHandler) body(path string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bodies[path]
}

// uploadBlock1 sends body to path in 16-byte blocks from p and returns the code of each answer,
// stopping at the first that is not 2.31. A 5.03 for block 0 is retried until retryFor has
// passed, as a device that was told to come back later does.
func uploadBlock1(t *testing.T, p *rawPeer, to Addr, path string, body []byte, mid uint16, retryFor time.Duration) []Code {
	t.Helper()
	var codes []Code
	deadline := time.Now().Add(retryFor)
	for num := uint32(0); int(num)*16 < len(body); num++ {
		end := min(int(num+1)*16, len(body))
		mid++
		p.send(to, datagram(t, typeCON, mid, block1To(path, num, end < len(body), 0, body[num*16:end])))
		f := p.recvFrame()
		if f.mid != mid {
			t.Fatalf("answer to message %d, want %d", f.mid, mid)
		}
		if num == 0 && f.msg.Code == ServiceUnavailable && time.Now().Before(deadline) {
			num-- // try block 0 again, with a new message id
			continue
		}
		codes = append(codes, f.msg.Code)
		if f.msg.Code != Continue {
			return codes
		}
	}
	return codes
}

// TestLimits_Block1AbandonedTransfersFromOneIP: many abandoned one-block transfers from one IP
// address, each from its own port, neither fill the Block1 table for everyone else nor lock
// that IP out: they are bounded by MaxBlock1PerIP, a stalled one gives way to a new transfer,
// and they expire after Block1Timeout.
func TestLimits_Block1AbandonedTransfersFromOneIP(t *testing.T) {
	cfg := wireConfig()
	cfg.MaxPendingBlock1 = 128
	cfg.MaxBlock1PerIP = 16
	cfg.Block1Timeout = 500 * time.Millisecond
	cfg.SourceExempt = []netip.Prefix{} // loopback is a host like any other here
	h := &bodyHandler{bodies: map[string][]byte{}}
	ep := startEndpoint(t, h, cfg)

	// 400 abandoned transfers from 127.0.0.1, each from a new port: block 0 of 2, then nothing.
	for i := range 400 {
		p := newRawPeer(t)
		p.send(ep.addr, datagram(t, typeCON, uint16(i), block1To("/rd", 0, true, 0, make([]byte, 16))))
		if f := p.recvFrame(); f.msg.Code != Continue && f.msg.Code != ServiceUnavailable {
			t.Fatalf("abandoned transfer %d: %v", i, f.msg.Code)
		}
		p.conn.Close()
	}
	ep.block1.mu.Lock()
	held, fromIP := len(ep.block1.m), ep.block1.perIP[ep.addr.AddrPort.Addr()]
	ep.block1.mu.Unlock()
	if held > cfg.MaxBlock1PerIP || fromIP > cfg.MaxBlock1PerIP {
		t.Errorf("one IP holds %d of %d transfers, want at most MaxBlock1PerIP %d", fromIP, held, cfg.MaxBlock1PerIP)
	}

	body := bytes.Repeat([]byte("registration-payload:"), 3) // 63 bytes, 4 blocks
	for _, tc := range []struct {
		name string
		ip   net.IP
		path string
	}{
		{"another IP", net.IPv4(127, 0, 0, 2), "/rd/other"},
		{"the same IP, a new port", net.IPv4(127, 0, 0, 1), "/rd/same"}, // takes a stalled transfer's place
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRawPeerOn(t, tc.ip)
			codes := uploadBlock1(t, p, ep.addr, tc.path, body, 0x1000, 5*time.Second)
			if want := []Code{Continue, Continue, Continue, Changed}; !equalCodes(codes, want) {
				t.Fatalf("answers %v, want %v", codes, want)
			}
			if got := h.body(tc.path); !bytes.Equal(got, body) {
				t.Fatalf("handler got %q", got)
			}
		})
	}

	// Everything left incomplete expires after Block1Timeout, without any new transfer.
	eventually(t, "abandoned transfers expired", func() bool { return ep.block1.len() == 0 })
	if got := ep.counter(t, "lwota_transport_block1_dropped_total", "reason", "expired"); got == 0 {
		t.Fatal("no expiry counted")
	}
	if got := ep.counter(t, "lwota_transport_block1_dropped_total", "reason", "evicted"); got == 0 {
		t.Fatal("no eviction counted")
	}
	p := newRawPeer(t)
	if codes := uploadBlock1(t, p, ep.addr, "/rd/after", body, 0x2000, 0); !equalCodes(codes, []Code{Continue, Continue, Continue, Changed}) {
		t.Fatalf("after expiry: %v", codes)
	}
}

// TestLimits_Block1PerIPExempt: SourceExempt prefixes (a fleet's NAT gateway) are not held to
// MaxBlock1PerIP.
func TestLimits_Block1PerIPExempt(t *testing.T) {
	cfg := wireConfig()
	cfg.MaxBlock1PerIP = 2 // SourceExempt: loopback, by default
	ep := startEndpoint(t, contentHandler(), cfg)
	for i := range 4 {
		p := newRawPeer(t)
		p.send(ep.addr, datagram(t, typeCON, uint16(i), block1To("/up", 0, true, 0, make([]byte, 16))))
		if f := p.recvFrame(); f.msg.Code != Continue {
			t.Fatalf("transfer %d from an exempt address: %v, want 2.31", i, f.msg.Code)
		}
	}
}

// TestLimits_Block1StalledGivesWay: at a full table, a new transfer takes the place of the least
// recently active one only when that one has stalled (idle for ACKTimeout); a transfer still
// moving is never evicted, and the newcomer gets 5.03 instead.
func TestLimits_Block1StalledGivesWay(t *testing.T) {
	cfg := wireConfig()
	cfg.MaxPendingBlock1 = 2
	cfg.ACKTimeout = time.Hour // nothing stalls within the test
	ep := startEndpoint(t, contentHandler(), cfg)
	a, b, c := newRawPeer(t), newRawPeer(t), newRawPeer(t)
	for i, p := range []*rawPeer{a, b} {
		p.send(ep.addr, datagram(t, typeCON, uint16(i+1), block1To("/up", 0, true, 0, make([]byte, 16))))
		if f := p.recvFrame(); f.msg.Code != Continue {
			t.Fatalf("transfer %d: %v", i, f.msg.Code)
		}
	}
	c.send(ep.addr, datagram(t, typeCON, 3, block1To("/up", 0, true, 0, make([]byte, 16))))
	if f := c.recvFrame(); f.msg.Code != ServiceUnavailable {
		t.Fatalf("a third transfer while two are moving: %v, want 5.03", f.msg.Code)
	}
	// Once they count as stalled, the oldest (a) gives way; b continues.
	ep.block1.mu.Lock()
	ep.block1.stalled = 0
	ep.block1.mu.Unlock()
	c.send(ep.addr, datagram(t, typeCON, 4, block1To("/up", 0, true, 0, make([]byte, 16))))
	if f := c.recvFrame(); f.msg.Code != Continue {
		t.Fatalf("a third transfer once the others stalled: %v, want 2.31", f.msg.Code)
	}
	a.send(ep.addr, datagram(t, typeCON, 5, block1To("/up", 1, false, 0, make([]byte, 4))))
	if f := a.recvFrame(); f.msg.Code != RequestEntityIncomplete {
		t.Fatalf("the evicted transfer's next block: %v, want 4.08", f.msg.Code)
	}
	b.send(ep.addr, datagram(t, typeCON, 6, block1To("/up", 1, false, 0, make([]byte, 4))))
	if f := b.recvFrame(); f.msg.Code != Content {
		t.Fatalf("the younger transfer's last block: %v, want 2.05", f.msg.Code)
	}
	if got := ep.counter(t, "lwota_transport_limit_exceeded_total", "limit", "block_transfers"); got != 1 {
		t.Fatalf("block_transfers counted %v, want 1", got)
	}
}

func equalCodes(a, b []Code) bool { return slices.Equal(a, b) }
