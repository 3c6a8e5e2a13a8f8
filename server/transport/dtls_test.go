package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// pskMap is a PSKStore over a map.
type pskMap map[string]string

func (m pskMap) PSK(_ context.Context, identity string) ([]byte, error) {
	k, ok := m[identity]
	if !ok {
		return nil, fmt.Errorf("unknown identity %q", identity)
	}
	return []byte(k), nil
}

var testKeys = pskMap{"dev1": "secretkey123", "dev2": "otherkey456"}

// startDTLS runs a DTLS Endpoint on 127.0.0.1:0 until the test ends and checks for leaks.
func startDTLS(t testing.TB, h Handler, dc DTLSConfig) (*testEndpoint, *dtlsLink) {
	t.Helper()
	return startDTLSWith(t, h, testConfig(), dc)
}

// startDTLSWith is startDTLS with the engine's configuration.
func startDTLSWith(t testing.TB, h Handler, cfg Config, dc DTLSConfig) (*testEndpoint, *dtlsLink) {
	t.Helper()
	return startDTLSLogged(t, h, cfg, dc, nil)
}

// startDTLSLogged is startDTLSWith logging to logger.
func startDTLSLogged(t testing.TB, h Handler, cfg Config, dc DTLSConfig, logger *slog.Logger) (*testEndpoint, *dtlsLink) {
	t.Helper()
	if tt, ok := t.(*testing.T); ok {
		checkLeaks(tt)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if dc.PSK == nil {
		dc.PSK = testKeys
	}
	reg := prometheus.NewRegistry()
	e, err := NewDTLS(pc, h, cfg, dc, logger, reg)
	if err != nil {
		t.Fatalf("NewDTLS: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return")
		}
	})
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	return &testEndpoint{Endpoint: e, reg: reg, addr: Addr{Network: DTLS, AddrPort: ap}}, e.link.(*dtlsLink)
}

// dialDTLS handshakes a pion client with identity and key from conn (a fresh socket when nil);
// extra adds to its options. The handshake has 2 s: tests of handshakes the server refuses
// by staying silent wait that long.
func dialDTLS(t testing.TB, to Addr, identity, key string, conn net.PacketConn, extra ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	return dialDTLSWithin(t, 2*time.Second, to, identity, key, conn, extra...)
}

// dialDTLSWithin is dialDTLS with d for the handshake. A client that gives up sends nothing
// (pion's Close), so the server's half of the handshake stays until HandshakeTimeout, or, if
// the server finished its side, as an established session until IdleTimeout.
func dialDTLSWithin(t testing.TB, d time.Duration, to Addr, identity, key string, conn net.PacketConn, extra ...dtls.ClientOption) (*dtls.Conn, error) {
	t.Helper()
	if conn == nil {
		var err error
		if conn, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("listen: %v", err)
		}
	}
	opts := append([]dtls.ClientOption{
		dtls.WithPSK(func([]byte) ([]byte, error) { return []byte(key), nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	}, extra...)
	c, err := dtls.ClientWithOptions(conn, net.UDPAddrFromAddrPort(to.AddrPort), opts...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// readFrame reads and decodes one CoAP message from a client conn.
func readFrame(t testing.TB, c *dtls.Conn) frame {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	f, err := decode(buf[:n])
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return f
}

func registerHandler(calls *atomic.Int64, got chan<- Peer) Handler {
	return HandlerFunc(func(_ context.Context, from Peer, r *Message) *Message {
		calls.Add(1)
		if got != nil {
			select {
			case got <- from:
			default:
			}
		}
		m := NewMessage(Created)
		m.LocationPath = []string{"rd", "abc"}
		m.Payload = []byte("registered")
		return m
	})
}

func TestDTLSLibcoapPSK(t *testing.T) {
	bin := sysdeps.Require(t, "coap-client-openssl")
	var calls atomic.Int64
	got := make(chan Peer, 1)
	te, link := startDTLS(t, registerHandler(&calls, got), DTLSConfig{HandshakeTimeout: 3 * time.Second})
	run := func(identity, key string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		url := fmt.Sprintf("coaps://127.0.0.1:%d/rd?ep=%s", te.addr.AddrPort.Port(), identity)
		out, err := exec.CommandContext(ctx, bin, "-m", "post", "-u", identity, "-k", key, "-B", "3",
			"-e", "</1/0>", url).CombinedOutput()
		return string(out), err
	}
	t.Run("ok", func(t *testing.T) {
		out, err := run("dev1", "secretkey123")
		if err != nil || !strings.Contains(out, "registered") {
			t.Fatalf("coap-client: %v\n%s", err, out)
		}
		select {
		case p := <-got:
			if p.Identity != "dev1" || p.Addr.Network != DTLS || !p.Addr.AddrPort.IsValid() {
				t.Fatalf("peer %+v", p)
			}
		default:
			t.Fatal("handler not called")
		}
	})
	before := calls.Load()
	for _, tc := range []struct{ name, id, key string }{
		{"wrong key", "dev1", "wrongkey000"},
		{"unknown identity", "nobody", "secretkey123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := te.counter(t, "lwota_transport_dtls_handshakes_total", "result", "failed")
			out, _ := run(tc.id, tc.key)
			if strings.Contains(out, "registered") {
				t.Fatalf("answered: %s", out)
			}
			eventually(t, "failed handshake counted", func() bool {
				return te.counter(t, "lwota_transport_dtls_handshakes_total", "result", "failed") > failed
			})
		})
	}
	if calls.Load() != before {
		t.Fatalf("handler called %d times after bad handshakes", calls.Load()-before)
	}
	eventually(t, "sessions closed", func() bool { return link.sessions() == 0 })
}

func TestDTLSDoOverSession(t *testing.T) {
	var calls atomic.Int64
	got := make(chan Peer, 1)
	te, _ := startDTLS(t, registerHandler(&calls, got), DTLSConfig{})

	// No session yet: the server cannot reach the device.
	if _, err := te.Do(context.Background(), Addr{Network: DTLS, AddrPort: te.addr.AddrPort}, req(GET, "/3/0")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Do without session: %v", err)
	}

	c, err := dialDTLS(t, te.addr, "dev2", "otherkey456", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	reg := req(POST, "/rd", 1, 2)
	reg.Query = []string{"ep=dev2"}
	if _, err := c.Write(datagram(t, typeCON, 0x1234, reg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	f := readFrame(t, c)
	if f.typ != typeACK || f.mid != 0x1234 || f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
	peer := <-got
	if peer.Identity != "dev2" || peer.Addr.Network != DTLS {
		t.Fatalf("peer %+v", peer)
	}

	// Server → device over the same session.
	type result struct {
		m   *Message
		err error
	}
	res := make(chan result, 1)
	go func() {
		m, err := te.Do(context.Background(), peer.Addr, req(GET, "/3/0/0"))
		res <- result{m, err}
	}()
	f = readFrame(t, c)
	if f.typ != typeCON || f.msg == nil || f.msg.Code != GET || f.msg.Path != "/3/0/0" {
		t.Fatalf("request %+v", f)
	}
	ans := NewMessage(Content)
	ans.Token = f.msg.Token
	ans.Payload = []byte("lwota-device")
	if _, err := c.Write(datagram(t, typeACK, f.mid, ans)); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := <-res
	if r.err != nil || r.m.Code != Content || string(r.m.Payload) != "lwota-device" {
		t.Fatalf("Do: %+v %v", r.m, r.err)
	}
}

func TestDTLSMaxSessions(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{MaxSessions: 1, HandshakeTimeout: time.Second})
	c1, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	if c2, err := dialDTLS(t, te.addr, "dev2", "otherkey456", nil); err == nil {
		c2.Close()
		t.Fatal("second session accepted beyond MaxSessions")
	}
	if n := te.counter(t, "lwota_transport_dtls_sessions_refused_total"); n == 0 {
		t.Fatal("refusal not counted")
	}
	c1.Close() // close_notify frees the slot
	eventually(t, "slot freed", func() bool { return link.sessions() == 0 })
	c3, err := dialDTLS(t, te.addr, "dev2", "otherkey456", nil)
	if err != nil {
		t.Fatalf("handshake after the slot freed: %v", err)
	}
	c3.Close()
}

func TestDTLSIdleTimeout(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{IdleTimeout: 200 * time.Millisecond})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := pc.LocalAddr().String()
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", pc)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	eventually(t, "session open", func() bool { return link.sessions() == 1 })
	eventually(t, "idle session closed", func() bool { return link.sessions() == 0 })
	if n := te.counter(t, "lwota_transport_dtls_sessions_idle_closed_total"); n != 1 {
		t.Fatalf("idle closed %v", n)
	}
	c.Close()
	// The device comes back from the same address: a new handshake, then a request.
	pc, err = net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	c, err = dialDTLS(t, te.addr, "dev1", "secretkey123", pc)
	if err != nil {
		t.Fatalf("second handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 7, req(POST, "/rd", 9))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
}

func TestDTLSFlood(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{HandshakeTimeout: 300 * time.Millisecond})
	var socks []net.PacketConn
	for range 4 {
		s, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		socks = append(socks, s)
	}
	to := net.UDPAddrFromAddrPort(te.addr.AddrPort)
	for i := range 500 {
		b := make([]byte, 40+i%200)
		_, _ = rand.Read(b)
		if i%2 == 0 { // a bogus ClientHello: valid record header, garbage body
			copy(b, []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, byte(i), 0, byte(len(b) - 13), 1})
		}
		if _, err := socks[i%len(socks)].WriteTo(b, to); err != nil {
			t.Fatal(err)
		}
	}
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake after flood: %v", err)
	}
	if _, err := c.Write(datagram(t, typeCON, 1, req(POST, "/rd", 1))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
	c.Close()
	eventually(t, "sessions back to 0", func() bool { return link.sessions() == 0 })
}

func TestDTLSConnectionIDHandshake(t *testing.T) {
	te, link := startDTLS(t, registerHandler(new(atomic.Int64), nil), DTLSConfig{ConnectionID: true})
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 3, req(POST, "/rd", 4))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
	link.mu.Lock()
	cids := len(link.byCID)
	link.mu.Unlock()
	if cids != 1 {
		t.Fatalf("connection ids %d, want 1", cids)
	}
}

// BenchmarkDTLSHandshake measures PSK handshakes (client and server in this process).
func BenchmarkDTLSHandshake(b *testing.B) {
	te, _ := startDTLS(b, nil, DTLSConfig{})
	start := time.Now()
	for b.Loop() {
		c, err := dialDTLS(b, te.addr, "dev1", "secretkey123", nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

// askDevice has e send GET /3/0/0 to the device at addr, answers it from the device's DTLS
// connection c, and fails the test unless the request arrived there and Do returned the answer.
func askDevice(t *testing.T, e *Endpoint, c *dtls.Conn, addr Addr, what string) {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		_, err := e.Do(t.Context(), addr, req(GET, "/3/0/0"))
		res <- err
	}()
	f := readFrame(t, c)
	if f.typ != typeCON || f.msg == nil || f.msg.Path != "/3/0/0" {
		t.Fatalf("request %+v", f)
	}
	ans := NewMessage(Content)
	ans.Token = f.msg.Token
	if _, err := c.Write(datagram(t, typeACK, f.mid, ans)); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
