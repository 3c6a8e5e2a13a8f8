package transport

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// noExempt is a Config whose source rate limit applies to loopback too.
func noExempt(rate float64, burst int) Config {
	cfg := testConfig()
	cfg.SourceRate, cfg.SourceBurst, cfg.SourceExempt = rate, burst, []netip.Prefix{}
	return cfg
}

func contentHandler() *countingHandler {
	return &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
}

// recvAll reads datagrams until quiet has passed without one.
func (p *rawPeer) recvAll(quiet time.Duration) []frame {
	p.t.Helper()
	var out []frame
	for {
		b, _, err := p.tryRecv(quiet)
		if err != nil {
			return out
		}
		f, err := decode(b)
		if err != nil {
			p.t.Fatalf("decode % x: %v", b, err)
		}
		out = append(out, f)
	}
}

// TestLimits_SourceRate: a source past its bucket is dropped, except one 5.03 with Max-Age per
// second; an exempt prefix is not limited.
func TestLimits_SourceRate(t *testing.T) {
	cases := []struct {
		name               string
		cfg                Config
		handled, refused   int
		answered503        int
		countedSourceLimit float64
	}{
		// A rate so low that no token comes back during the test: exactly the burst passes.
		{"limited", noExempt(0.001, 5), 5, 15, 1, 15},
		{"loopback exempt by default", func() Config { c := testConfig(); c.SourceRate, c.SourceBurst = 0.001, 5; return c }(), 20, 0, 0, 0},
		{"off", noExempt(-1, 0), 20, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := contentHandler()
			ep := startEndpoint(t, h, tc.cfg)
			dev := newRawPeer(t)
			for i := range 20 {
				dev.send(ep.addr, datagram(t, typeCON, uint16(100+i), req(GET, "/3/0", byte(i))))
			}
			var ok, unavailable int
			for _, f := range dev.recvAll(300 * time.Millisecond) {
				switch f.msg.Code {
				case Content:
					ok++
				case ServiceUnavailable:
					unavailable++
					if !strings.Contains(string(f.msg.Payload), "retry after") {
						t.Errorf("5.03 diagnostic %q", f.msg.Payload)
					}
				default:
					t.Errorf("unexpected answer %v", f.msg.Code)
				}
			}
			if ok != tc.handled || unavailable != tc.answered503 || int(h.calls.Load()) != tc.handled {
				t.Fatalf("2.05 x%d, 5.03 x%d, handler x%d; want %d, %d, %d", ok, unavailable, h.calls.Load(), tc.handled, tc.answered503, tc.handled)
			}
			if got := ep.counter(t, "lwota_transport_limit_exceeded_total", "limit", "source_rate"); got != tc.countedSourceLimit {
				t.Fatalf("source_rate counted %v, want %v", got, tc.countedSourceLimit)
			}
		})
	}
}

// TestLimits_SourceRateMaxAge: the 5.03 carries Max-Age, the seconds until the next token.
func TestLimits_SourceRateMaxAge(t *testing.T) {
	ep := startEndpoint(t, contentHandler(), noExempt(0.1, 1)) // a token every 10 s
	dev := newRawPeer(t)
	dev.send(ep.addr, datagram(t, typeCON, 1, req(GET, "/3/0", 1)))
	dev.send(ep.addr, datagram(t, typeCON, 2, req(GET, "/3/0", 2)))
	var raw []byte
	for range 2 {
		b, _ := dev.recv()
		if f, _ := decode(b); f.msg != nil && f.msg.Code == ServiceUnavailable {
			raw = b
		}
	}
	// ACK 5.03, mid 2, token 02, then Max-Age (option 14, delta 14 = 0xd? with ext) of 9 or 10 s.
	if raw == nil {
		t.Fatal("no 5.03")
	}
	want10 := []byte{0x61, 0xa3, 0x00, 0x02, 0x02, 0xd1, 0x01, 10}
	want9 := []byte{0x61, 0xa3, 0x00, 0x02, 0x02, 0xd1, 0x01, 9}
	if !strings.HasPrefix(string(raw), string(want10)) && !strings.HasPrefix(string(raw), string(want9)) {
		t.Fatalf("5.03 % x, want it to start with % x (Max-Age 10) or Max-Age 9", raw, want10)
	}
}

func TestLimits_SourceLimiterBounded(t *testing.T) {
	l := newSourceLimiter(1, 1, 1000, nil)
	var now int64
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, now); !ok {
			t.Fatalf("a new source %v refused", a)
		}
		if n := l.sources(); n > 1000 {
			t.Fatalf("%d buckets held, bound 1000", n)
		}
	}
	// One source: refused after its burst, answered at most once per second.
	a := netip.MustParseAddr("192.0.2.1")
	answers := 0
	for i := range 3000 {
		now = int64(i) * int64(time.Millisecond) / 1000 // 3000 datagrams within 3 ms
		ok, answer := l.allow(a, now)
		if ok && i > 0 {
			t.Fatalf("datagram %d passed an empty bucket", i)
		}
		if answer {
			answers++
		}
	}
	if answers != 1 {
		t.Fatalf("%d answers in 3 ms, want 1", answers)
	}
	if ok, answer := l.allow(a, now+int64(2*time.Second)); !ok || answer {
		t.Fatalf("after 2 s: ok=%v answer=%v, want a token", ok, answer)
	}
}

// TestLimits_OversizeRequestGets413: a request in a datagram over MaxMessageSize is answered
// 4.13 with Block1 (the block size lwota takes) and Size1 (the largest body), RFC 7959 §2.9.3.
func TestLimits_OversizeRequestGets413(t *testing.T) {
	h := contentHandler()
	cfg := wireConfig()
	cfg.MaxMessageSize = 200
	ep := startEndpoint(t, h, cfg)
	dev := newRawPeer(t)
	m := req(POST, "/rd", 7)
	m.Payload = make([]byte, 300)
	dev.send(ep.addr, datagram(t, typeCON, 9, m))
	f := dev.recvFrame()
	if f.typ != typeACK || f.mid != 9 || f.msg.Code != RequestEntityTooLarge {
		t.Fatalf("answer %+v, want ACK 4.13", f)
	}
	if f.msg.Block1 != (Block{Set: true, SZX: SZXFor(cfg.BlockSize)}) || f.msg.Size1 != int64(ep.cfg.MaxBodySize) {
		t.Fatalf("Block1 %+v Size1 %d", f.msg.Block1, f.msg.Size1)
	}
	if h.calls.Load() != 0 {
		t.Fatal("handler ran")
	}
	if got := ep.counter(t, "lwota_transport_limit_exceeded_total", "limit", "datagram_size"); got != 1 {
		t.Fatalf("datagram_size counted %v", got)
	}
}

// block1To is block num of a Block1 upload to path, size 16<<szx.
func block1To(path string, num uint32, more bool, szx uint8, payload []byte) *Message {
	m := req(POST, path, byte(num), byte(len(path)))
	m.Block1 = Block{Set: true, Num: num, More: more, SZX: szx}
	m.Payload = payload
	return m
}

// TestLimits_Block1PerPeer: one address may hold MaxBlock1PerPeer reassemblies; another
// address still gets its own.
func TestLimits_Block1PerPeer(t *testing.T) {
	cfg := wireConfig()
	cfg.MaxBlock1PerPeer = 2
	ep := startEndpoint(t, contentHandler(), cfg)
	dev, other := newRawPeer(t), newRawPeer(t)
	for i, want := range []Code{Continue, Continue, ServiceUnavailable} {
		dev.send(ep.addr, datagram(t, typeCON, uint16(i+1), block1To(fmt.Sprintf("/up/%d", i), 0, true, 0, make([]byte, 16))))
		if f := dev.recvFrame(); f.msg.Code != want {
			t.Fatalf("transfer %d: %v, want %v", i, f.msg.Code, want)
		}
	}
	other.send(ep.addr, datagram(t, typeCON, 1, block1To("/up/9", 0, true, 0, make([]byte, 16))))
	if f := other.recvFrame(); f.msg.Code != Continue {
		t.Fatalf("another device: %v, want 2.31", f.msg.Code)
	}
	// Finishing one transfer frees a slot of the first device.
	dev.send(ep.addr, datagram(t, typeCON, 10, block1To("/up/0", 1, false, 0, make([]byte, 4))))
	if f := dev.recvFrame(); f.msg.Code != Content {
		t.Fatalf("last block: %v", f.msg.Code)
	}
	dev.send(ep.addr, datagram(t, typeCON, 11, block1To("/up/2", 0, true, 0, make([]byte, 16))))
	if f := dev.recvFrame(); f.msg.Code != Continue {
		t.Fatalf("after a slot freed: %v", f.msg.Code)
	}
	if got := ep.counter(t, "lwota_transport_limit_exceeded_total", "limit", "block_transfers_per_device"); got != 1 {
		t.Fatalf("block_transfers_per_device counted %v", got)
	}
}

// TestLimits_Block1Bytes: the reassemblies' memory is bounded, and a Size1 a client merely
// claims does not reserve it.
func TestLimits_Block1Bytes(t *testing.T) {
	cfg := wireConfig()
	cfg.MaxBlock1Bytes = 4096
	ep := startEndpoint(t, contentHandler(), cfg)
	dev := newRawPeer(t)

	claim := block1To("/claim", 0, true, 6, make([]byte, 1024))
	claim.Size1 = int64(ep.cfg.MaxBodySize)
	dev.send(ep.addr, datagram(t, typeCON, 1, claim))
	if f := dev.recvFrame(); f.msg.Code != Continue {
		t.Fatalf("block 0 claiming Size1 1 MiB: %v", f.msg.Code)
	}
	ep.block1.mu.Lock()
	held := ep.block1.bytes
	ep.block1.mu.Unlock()
	if held > block1FirstCap {
		t.Fatalf("%d bytes held for one 1 KiB block", held)
	}

	var refused bool
	for num := uint32(0); num < 8 && !refused; num++ {
		dev.send(ep.addr, datagram(t, typeCON, uint16(10+num), block1To("/big", num, true, 6, make([]byte, 1024))))
		switch f := dev.recvFrame(); f.msg.Code {
		case Continue:
		case ServiceUnavailable:
			refused = true
		default:
			t.Fatalf("block %d: %v", num, f.msg.Code)
		}
	}
	if !refused {
		t.Fatal("8 KiB reassembled under a 4 KiB budget")
	}
	if got := ep.counter(t, "lwota_transport_limit_exceeded_total", "limit", "block_bytes"); got != 1 {
		t.Fatalf("block_bytes counted %v", got)
	}
	ep.block1.sweep(ep.now() + 1) // everything idle: the accounting returns to 0
	ep.block1.mu.Lock()
	defer ep.block1.mu.Unlock()
	if ep.block1.bytes != 0 || len(ep.block1.perPeer) != 0 {
		t.Fatalf("after sweep: %d bytes, %d peers", ep.block1.bytes, len(ep.block1.perPeer))
	}
}

// clientHello is a DTLS 1.2 ClientHello record of epoch 0 offering TLS_PSK_WITH_AES_128_CCM_8,
// with the given session id and cookie.
func clientHello(sessionID, cookie []byte) []byte {
	body := []byte{0xfe, 0xfd}
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	body = append(body, random...)
	body = append(append(body, byte(len(sessionID))), sessionID...)
	body = append(append(body, byte(len(cookie))), cookie...)
	body = append(body, 0, 2, 0xc0, 0xa8, 1, 0) // one cipher suite, null compression
	n := len(body)
	hs := append([]byte{1, byte(n >> 16), byte(n >> 8), byte(n), 0, 0, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
	rec := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(hs) >> 8), byte(len(hs))}
	return append(rec, hs...)
}

// TestDTLS_RFC6347_4_2_1_CookieExchange: a ClientHello without a cookie is answered with a
// HelloVerifyRequest; no session is established and the handler never runs. pion keeps the
// cookie in the state of a pending handshake, so the address holds a handshake slot until
// HandshakeTimeout, then nothing. (HelloVerifyPion; the stateless exchange: dtls_cookie_test.go.)
func TestDTLS_RFC6347_4_2_1_CookieExchange(t *testing.T) {
	var calls atomic.Int64
	te, link := startDTLS(t, registerHandler(&calls, nil), DTLSConfig{HandshakeTimeout: 300 * time.Millisecond, HelloVerify: HelloVerifyPion})
	dev := newRawPeer(t)
	dev.send(te.addr, clientHello(nil, nil))
	b, _ := dev.recv()
	if len(b) < 14 || b[0] != 22 || b[13] != 3 {
		t.Fatalf("answer % x, want a handshake record holding a HelloVerifyRequest (type 3)", b)
	}
	if link.hasSession(dev.addr().AddrPort) {
		t.Fatal("a session was established without the cookie round trip")
	}
	link.mu.Lock()
	handshaking := link.handshaking
	link.mu.Unlock()
	if handshaking != 1 {
		t.Fatalf("%d handshakes pending, want 1", handshaking)
	}
	eventually(t, "the pending handshake to time out", func() bool { return link.sessions() == 0 })
	if calls.Load() != 0 {
		t.Fatal("handler ran")
	}
}

// TestDTLS_HandshakeRatePerSource: ClientHellos from one address beyond its bucket start no
// handshake; another address is not affected. pion answers the ClientHellos (HelloVerifyPion),
// so each that is admitted starts a session.
func TestDTLS_HandshakeRatePerSource(t *testing.T) {
	cfg := noExempt(-1, 0)
	te, link := startDTLSWith(t, nil, cfg, DTLSConfig{HandshakeRate: 0.001, HandshakeBurst: 3, HandshakeTimeout: 300 * time.Millisecond,
		HelloVerify: HelloVerifyPion})
	to := net.UDPAddrFromAddrPort(te.addr.AddrPort)
	for range 10 { // ten ports of one host
		s, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.WriteTo(clientHello([]byte{1, 2, 3}, []byte{9, 9}), to); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "7 refusals", func() bool {
		return te.counter(t, "lwota_transport_limit_exceeded_total", "limit", "dtls_handshake_rate") == 7
	})
	if n := link.sessions(); n != 3 {
		t.Fatalf("%d handshakes started, want the burst of 3", n)
	}
	other, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer other.Close()
	if _, err := other.WriteTo(clientHello(nil, nil), to); err != nil {
		t.Fatal(err)
	}
	eventually(t, "another host's handshake", func() bool { return link.sessions() == 4 })
	eventually(t, "pending handshakes to time out", func() bool { return link.sessions() == 0 })
}

// TestDTLS_LimitCounters: MaxHandshakes and MaxSessions refusals count under their limits
// (HelloVerifyPion: every ClientHello admitted starts a session).
func TestDTLS_LimitCounters(t *testing.T) {
	te, link := startDTLS(t, nil, DTLSConfig{MaxSessions: 3, MaxHandshakes: 2, HandshakeTimeout: 300 * time.Millisecond, HelloVerify: HelloVerifyPion})
	to := net.UDPAddrFromAddrPort(te.addr.AddrPort)
	for range 4 {
		s, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.WriteTo(clientHello(nil, nil), to); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "2 refusals", func() bool {
		return te.counter(t, "lwota_transport_limit_exceeded_total", "limit", "dtls_handshakes") == 2
	})
	if got := te.counter(t, "lwota_transport_dtls_sessions_refused_total"); got != 2 {
		t.Fatalf("dtls_sessions_refused_total %v", got)
	}
	eventually(t, "pending handshakes to time out", func() bool { return link.sessions() == 0 })
}
