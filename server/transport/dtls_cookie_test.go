package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// withCookie returns the ClientHello datagram hello (one record, as clientHello makes) resent
// with cookie, as a client answering a HelloVerifyRequest does: the same parameters, message_seq
// 1, the next record sequence number.
func withCookie(t testing.TB, hello, cookie []byte) []byte {
	t.Helper()
	f, err := parseClientHello(hello)
	if err != nil {
		t.Fatalf("not a ClientHello: %v", err)
	}
	body := hello[recordHeader+12:]
	sid := int(body[34])
	i := 35 + sid // the cookie's length byte
	nb := append(append(append([]byte(nil), body[:i]...), byte(len(cookie))), cookie...)
	nb = append(nb, body[i+1+len(f.cookie):]...)
	n := len(nb)
	hs := append([]byte{clientHello1, byte(n >> 16), byte(n >> 8), byte(n), 0, 1, 0, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}, nb...)
	rec := append([]byte{handshakeType, dtlsMajor, dtlsMinor12, 0, 0, 0, 0, 0, 0, 0, 1}, byte(len(hs)>>8), byte(len(hs)))
	return append(rec, hs...)
}

// hvrCookie checks that b is a HelloVerifyRequest datagram and returns its cookie and the
// record sequence number and message_seq it carries.
func hvrCookie(t testing.TB, b []byte) (cookie []byte, recordSeq uint64, messageSeq uint16) {
	t.Helper()
	if len(b) < recordHeader+15 || b[0] != handshakeType || b[3] != 0 || b[4] != 0 || b[recordHeader] != 3 {
		t.Fatalf("answer % x, want a HelloVerifyRequest record", b)
	}
	var s [6]byte
	copy(s[:], b[5:11])
	cl := int(b[recordHeader+14])
	if len(b) != recordHeader+15+cl || int(binary.BigEndian.Uint16(b[11:13])) != 15+cl {
		t.Fatalf("HelloVerifyRequest % x: bad lengths", b)
	}
	return b[recordHeader+15:], recordSeq48(s), binary.BigEndian.Uint16(b[recordHeader+4:])
}

// cookieRoundTrip sends a ClientHello from dev, answers the HelloVerifyRequest (lwota's or
// pion's) with the cookie, and returns.
func cookieRoundTrip(t *testing.T, dev *rawPeer, to Addr) {
	t.Helper()
	hello := clientHello(nil, nil)
	dev.send(to, hello)
	b, _ := dev.recv()
	c, _, _ := hvrCookie(t, b)
	dev.send(to, withCookie(t, hello, c))
}

// TestDTLS_RFC6347_4_2_1_StatelessFlood: ClientHellos without a cookie from many addresses (as a
// flood from spoofed sources would come) are each answered with a HelloVerifyRequest that echoes
// the ClientHello's record sequence number and message_seq, and leave nothing behind: no session,
// no pending handshake, no goroutine, no limit touched.
func TestDTLS_RFC6347_4_2_1_StatelessFlood(t *testing.T) {
	var calls atomic.Int64
	te, link := startDTLS(t, registerHandler(&calls, nil), DTLSConfig{HelloVerify: HelloVerifyStateless, HandshakeTimeout: 30 * time.Second})
	const hosts, ports = 20, 10
	var peers []*rawPeer
	for h := range hosts {
		ip := net.IPv4(127, 0, 0, byte(1+h))
		for range ports {
			peers = append(peers, newRawPeerOn(t, ip))
		}
	}
	// One ClientHello answered first: the endpoint's workers, janitor and link goroutines are
	// started by Serve in the background, and counting before they run would count them as the
	// flood's.
	warm := newRawPeerOn(t, net.IPv4(127, 0, 0, 99))
	warm.send(te.addr, clientHello(nil, nil))
	if b, _ := warm.recv(); b == nil {
		t.Fatal("no HelloVerifyRequest to the first ClientHello")
	}
	before := runtime.NumGoroutine()
	for i, p := range peers {
		hello := clientHello(nil, nil)
		hello[10] = byte(i)                                             // record sequence number
		binary.BigEndian.PutUint16(hello[recordHeader+4:], uint16(i%2)) // message_seq (a retransmission after an HVR: 1)
		p.send(te.addr, hello)
	}
	for i, p := range peers {
		b, _ := p.recv()
		_, rs, ms := hvrCookie(t, b)
		if rs != uint64(byte(i)) || ms != uint16(i%2) {
			t.Fatalf("peer %d: HelloVerifyRequest with record sequence %d, message_seq %d; want %d, %d", i, rs, ms, byte(i), i%2)
		}
	}
	if n := link.sessions(); n != 0 {
		t.Fatalf("%d sessions after %d ClientHellos without a cookie, want none", n, len(peers))
	}
	link.mu.Lock()
	pending := link.handshaking
	link.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d handshakes pending, want none", pending)
	}
	if got := te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieSent); got != float64(len(peers)+1) {
		t.Fatalf("hello_verify_total{result=sent} %v, want %d", got, len(peers)+1)
	}
	for _, limit := range []string{"dtls_sessions", "dtls_handshakes", "dtls_handshake_rate"} {
		if got := te.counter(t, "lwota_transport_limit_exceeded_total", "limit", limit); got != 0 {
			t.Fatalf("limit %s counted %v", limit, got)
		}
	}
	// Goroutines are counted process-wide: a timer of an earlier test's endpoint may run one
	// for a moment, so wait for transient ones to end; a session kept for a ClientHello would
	// hold its goroutines for HandshakeTimeout (30 s), far past this wait.
	deadline := time.Now().Add(10 * time.Second)
	for after := runtime.NumGoroutine(); after > before+2; after = runtime.NumGoroutine() { // +2: the runtime's own
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d -> %d after the flood:\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if calls.Load() != 0 {
		t.Fatal("handler ran")
	}
}

// TestDTLS_RFC6347_4_2_1_StatelessCookieChecks: a ClientHello whose cookie is forged, expired
// (two secret rotations old), made for another address or port, or made for other ClientHello
// parameters is answered with a fresh HelloVerifyRequest and creates nothing; the cookie of the
// previous secret, from the address and with the parameters it was made for, starts a session.
func TestDTLS_RFC6347_4_2_1_StatelessCookieChecks(t *testing.T) {
	te, link := startDTLS(t, nil, DTLSConfig{HelloVerify: HelloVerifyStateless, HandshakeTimeout: 300 * time.Millisecond})
	jar := link.cookies.Load()
	rotate := func() { jar.mu.Lock(); jar.rotate(); jar.mu.Unlock() }
	// cookieFor does the first half of the exchange from dev and returns the hello and cookie.
	cookieFor := func(dev *rawPeer) ([]byte, []byte) {
		hello := clientHello(nil, nil)
		dev.send(te.addr, hello)
		b, _ := dev.recv()
		c, _, _ := hvrCookie(t, b)
		return hello, bytes.Clone(c)
	}
	stale := 0.0
	refused := func(t *testing.T, dev *rawPeer, p, oldCookie []byte) {
		t.Helper()
		dev.send(te.addr, p)
		b, _ := dev.recv()
		c, _, ms := hvrCookie(t, b)
		if bytes.Equal(c, oldCookie) || ms != 1 {
			t.Fatalf("HelloVerifyRequest repeats the refused cookie or has message_seq %d", ms)
		}
		stale++
		if got := te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieStale); got != stale {
			t.Fatalf("hello_verify_total{result=stale} %v, want %v", got, stale)
		}
		if n := link.sessions(); n != 0 {
			t.Fatalf("%d sessions, want none", n)
		}
	}
	t.Run("forged", func(t *testing.T) {
		dev := newRawPeer(t)
		forged := bytes.Repeat([]byte{0x5a}, cookieSize)
		refused(t, dev, withCookie(t, clientHello(nil, nil), forged), forged)
	})
	t.Run("expired", func(t *testing.T) {
		dev := newRawPeer(t)
		hello, c := cookieFor(dev)
		rotate()
		rotate()
		refused(t, dev, withCookie(t, hello, c), c)
	})
	t.Run("another port", func(t *testing.T) {
		hello, c := cookieFor(newRawPeer(t))
		refused(t, newRawPeer(t), withCookie(t, hello, c), c)
	})
	t.Run("another address", func(t *testing.T) {
		dev := newRawPeer(t)
		hello, c := cookieFor(dev)
		refused(t, newRawPeerOn(t, net.IPv4(127, 0, 0, 2)), withCookie(t, hello, c), c)
	})
	t.Run("other parameters", func(t *testing.T) {
		dev := newRawPeer(t)
		hello, c := cookieFor(dev)
		changed := bytes.Clone(hello)
		changed[recordHeader+12+2] ^= 1 // client random
		refused(t, dev, withCookie(t, changed, c), c)
	})
	t.Run("previous secret", func(t *testing.T) {
		dev := newRawPeer(t)
		hello, c := cookieFor(dev)
		rotate()
		dev.send(te.addr, withCookie(t, hello, c))
		eventually(t, "a session", func() bool { return link.sessions() == 1 })
		if got := te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieValid); got != 1 {
			t.Fatalf("hello_verify_total{result=valid} %v, want 1", got)
		}
		eventually(t, "the silent handshake to time out", func() bool { return link.sessions() == 0 })
	})
}

// TestDTLS_RFC6347_4_2_1_StatelessMalformed: a fragmented or truncated ClientHello cannot be
// checked without state; it is dropped and counted, and nothing answers it.
func TestDTLS_RFC6347_4_2_1_StatelessMalformed(t *testing.T) {
	te, link := startDTLS(t, nil, DTLSConfig{HelloVerify: HelloVerifyStateless})
	dev := newRawPeer(t)
	frag := clientHello(nil, nil)
	frag[recordHeader+11]-- // fragment_length one short of length: a first fragment
	dev.send(te.addr, frag)
	dev.send(te.addr, clientHello(nil, nil)[:40])
	eventually(t, "two malformed", func() bool {
		return te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieMalformed) == 2
	})
	if n := link.sessions(); n != 0 {
		t.Fatalf("%d sessions", n)
	}
	if b, _, err := dev.tryRecv(200 * time.Millisecond); err == nil {
		t.Fatalf("answered % x", b)
	}
}

// requireStatelessPion fails a test that needs pion to take over from a stateless
// HelloVerifyRequest when the linked pion cannot: lwota links its patched copy
// (third_party/pion-dtls, patch 4), so that is a broken build, not a missing feature.
func requireStatelessPion(t *testing.T) {
	t.Helper()
	if !pionFollowsClientHello(context.Background()) {
		t.Fatal("the linked pion/dtls cannot take over from a stateless HelloVerifyRequest (third_party/pion-dtls patch 4 missing?)")
	}
}

// TestDTLSStatelessCookieClients: real clients handshake through lwota's stateless cookie and
// pion's ServerHello (message_seq 1, RFC 6347 §4.2.2) and are served: pion's client (PSK, and
// certificates), libcoap's coap-client-openssl (OpenSSL, PSK), and a client whose ClientHello
// records carry mbed TLS 2.x's record version.
func TestDTLSStatelessCookieClients(t *testing.T) {
	requireStatelessPion(t)
	ca := newTestCA(t, "lwota test CA")
	var calls atomic.Int64
	got := make(chan Peer, 8)
	te, link := startDTLS(t, registerHandler(&calls, got), DTLSConfig{HelloVerify: HelloVerifyStateless, HandshakeTimeout: 5 * time.Second,
		X509: &X509Config{Certificate: ca.issue(t, "lwota", true), ClientCAs: ca.pool}})
	valid := 0.0
	check := func(t *testing.T, identity string) {
		t.Helper()
		select {
		case p := <-got:
			if p.Identity != identity {
				t.Fatalf("peer %+v, want identity %s", p, identity)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("handler not called")
		}
		valid++
		if got := te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieValid); got != valid {
			t.Fatalf("hello_verify_total{result=valid} %v, want %v: the handshake did not go through lwota's cookie", got, valid)
		}
	}
	register := func(t *testing.T, c *dtls.Conn) {
		t.Helper()
		reg := req(POST, "/rd", 9)
		reg.Query = []string{"ep=x"}
		if _, err := c.Write(datagram(t, typeCON, 0x99, reg)); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
			t.Fatalf("answer %+v", f)
		}
	}
	t.Run("pion psk", func(t *testing.T) {
		c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		register(t, c)
		check(t, "dev1")
	})
	t.Run("pion x509", func(t *testing.T) {
		c, err := dialX509(t, te.addr, ca.issue(t, "dev-9", false), ca.pool, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		register(t, c)
		check(t, X509IdentityPrefix+"dev-9")
	})
	t.Run("mbedtls2 record version", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", &helloVersionConn{PacketConn: pc, major: 0xfe, minor: 0x00})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		register(t, c)
		check(t, "dev1")
	})
	t.Run("libcoap openssl psk", func(t *testing.T) {
		bin := sysdeps.Require(t, "coap-client-openssl")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		url := fmt.Sprintf("coaps://127.0.0.1:%d/rd?ep=dev1", te.addr.AddrPort.Port())
		out, err := exec.CommandContext(ctx, bin, "-m", "post", "-u", "dev1", "-k", "secretkey123", "-B", "5", "-e", "</1/0>", url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "registered") {
			t.Fatalf("coap-client: %v\n%s", err, out)
		}
		check(t, "dev1")
	})
	if n := te.counter(t, "lwota_transport_dtls_hello_verify_total", "result", cookieSent); n < valid {
		t.Fatalf("hello_verify_total{result=sent} %v, fewer than the %v handshakes", n, valid)
	}
	_ = link
}

// TestShiftEpoch0Seq: only epoch-0 records are renumbered, every one of them in a datagram,
// and the caller's buffer is not touched.
func TestShiftEpoch0Seq(t *testing.T) {
	rec := func(epoch uint16, seq byte, body ...byte) []byte {
		r := []byte{handshakeType, dtlsMajor, dtlsMinor12, byte(epoch >> 8), byte(epoch), 0, 0, 0, 0, 0, seq, 0, byte(len(body))}
		return append(r, body...)
	}
	two := append(rec(0, 0, 2, 0, 0), rec(0, 1, 14)...)
	mixed := append(rec(0, 5, 20), rec(1, 0, 1, 2, 3)...)
	for _, tc := range []struct {
		name string
		in   []byte
		base uint64
		want []byte
	}{
		{"two epoch-0 records", two, 3, append(rec(0, 3, 2, 0, 0), rec(0, 4, 14)...)},
		{"epoch 1 kept", mixed, 2, append(rec(0, 7, 20), rec(1, 0, 1, 2, 3)...)},
		{"base 0", two, 0, two},
		{"carry", rec(0, 0xff), 1, append(rec(0, 0)[:9:9], append([]byte{1, 0}, rec(0, 0)[11:]...)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.Clone(tc.in)
			got := shiftEpoch0Seq(in, tc.base)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got  % x\nwant % x", got, tc.want)
			}
			if !bytes.Equal(in, tc.in) {
				t.Fatal("input changed")
			}
		})
	}
}

// FuzzClientHelloCookie: the ClientHello parser never panics or reads past its input; whatever
// it accepts gets a HelloVerifyRequest whose cookie, sent back in the same ClientHello from the
// same address, is valid, and is not valid from another port.
func FuzzClientHelloCookie(f *testing.F) {
	f.Add(clientHello(nil, nil))
	f.Add(clientHello([]byte{1, 2, 3}, make([]byte, 20)))
	f.Add(clientHello(nil, nil)[:40])
	jar := newCookieJar(time.Now, mustCookieMetrics(f))
	from := netip.MustParseAddrPort("127.0.0.1:5000")
	other := netip.MustParseAddrPort("127.0.0.1:5001")
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		result, answer, _ := jar.check(in, from)
		if !bytes.Equal(in, p) {
			t.Fatal("check changed its input")
		}
		if result == cookieMalformed {
			if answer != nil {
				t.Fatal("a malformed ClientHello was answered")
			}
			return
		}
		if result == cookieValid {
			return // the fuzzer guessed a cookie: fine
		}
		hello, err := parseClientHello(p)
		if err != nil {
			t.Fatalf("checked as %s but does not parse: %v", result, err)
		}
		c, _, ms := hvrCookie(t, answer)
		if ms != hello.messageSeq {
			t.Fatalf("message_seq %d, want %d", ms, hello.messageSeq)
		}
		again := withCookie(t, p[:recordHeader+int(binary.BigEndian.Uint16(p[11:13]))], c)
		if r, _, _ := jar.check(again, from); r != cookieValid {
			t.Fatalf("the cookie sent back is %s", r)
		}
		if r, _, _ := jar.check(again, other); r == cookieValid {
			t.Fatal("the cookie is valid from another port")
		}
	})
}

func mustCookieMetrics(t testing.TB) *cookieMetrics {
	m, err := newCookieMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
