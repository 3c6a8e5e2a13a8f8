package transport

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// helloVersionConn is a client socket that sends its ClientHello records with another record
// version, as mbed TLS 2.x does (fe 00) when its minimum version is left at the default.
type helloVersionConn struct {
	net.PacketConn
	major, minor byte
	rewritten    atomic.Int64 // ClientHello records sent with the other version
}

func (c *helloVersionConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	b := append([]byte(nil), p...)
	for r := b; len(r) >= recordHeader; {
		length := int(r[11])<<8 | int(r[12])
		if recordHeader+length > len(r) {
			break
		}
		if r[0] == handshakeType && r[3] == 0 && r[4] == 0 && length > 0 && r[recordHeader] == clientHello1 {
			r[1], r[2] = c.major, c.minor
			c.rewritten.Add(1)
		}
		r = r[recordHeader+length:]
	}
	if _, err := c.PacketConn.WriteTo(b, addr); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TestDTLS_RFC5246_E1_ClientHelloRecordVersion: a server accepts any record-layer version in a
// ClientHello (RFC 5246 Appendix E.1) and answers as DTLS 1.2. mbed TLS 2.x sends fe 00, which
// pion alone drops; the handshake completes and a CoAP request over the session is answered.
func TestDTLS_RFC5246_E1_ClientHelloRecordVersion(t *testing.T) {
	var calls atomic.Int64
	te, _ := startDTLS(t, registerHandler(&calls, nil), DTLSConfig{HandshakeTimeout: 5 * time.Second})
	for _, tc := range []struct {
		name         string
		major, minor byte
	}{
		{"mbedtls2 fe 00", 0xfe, 0x00},
		{"fe 01", 0xfe, 0x01},
		{"DTLS 1.0 fe ff", 0xfe, 0xff},
		{"DTLS 1.2 fe fd", 0xfe, 0xfd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			conn := &helloVersionConn{PacketConn: pc, major: tc.major, minor: tc.minor}
			c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", conn)
			if err != nil {
				t.Fatalf("handshake with ClientHello record version %02x %02x: %v", tc.major, tc.minor, err)
			}
			defer c.Close()
			if conn.rewritten.Load() == 0 {
				t.Fatal("no ClientHello record went through the rewriting socket")
			}
			reg := req(POST, "/rd", 7)
			reg.Query = []string{"ep=dev1"}
			if _, err := c.Write(datagram(t, typeCON, 0x4242, reg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			f := readFrame(t, c)
			if f.typ != typeACK || f.mid != 0x4242 || f.msg == nil || f.msg.Code != Created {
				t.Fatalf("answer %+v, want ACK 2.01", f)
			}
			if st, ok := c.ConnectionState(); !ok || st.CipherSuiteID != dtls.TLS_PSK_WITH_AES_128_CCM_8 {
				t.Fatalf("connection state %+v", st)
			}
		})
	}
}

func TestNormalizeHelloVersion(t *testing.T) {
	hello := func(major, minor byte) []byte {
		p := clientHello(nil, nil)
		p[1], p[2] = major, minor
		return p
	}
	withEpoch := func(p []byte, epoch byte) []byte { p[4] = epoch; return p }
	withType := func(p []byte, typ byte) []byte { p[13] = typ; return p }
	two := append(hello(0xfe, 0x00), hello(0xfe, 0x01)...)
	for _, tc := range []struct {
		name string
		in   []byte
		at   []int // offsets of the records whose version becomes fe fd; none: unchanged
	}{
		{"fe 00 rewritten", hello(0xfe, 0x00), []int{0}},
		{"fe 01 rewritten", hello(0xfe, 0x01), []int{0}},
		{"fe fd kept", hello(0xfe, 0xfd), nil},
		{"fe ff kept", hello(0xfe, 0xff), nil},
		{"not DTLS kept", hello(0x03, 0x01), nil},
		{"epoch 1 kept", withEpoch(hello(0xfe, 0x00), 1), nil},
		{"ServerHello kept", withType(hello(0xfe, 0x00), 2), nil},
		{"two records", two, []int{0, len(two) / 2}},
		{"truncated kept", hello(0xfe, 0x00)[:40], nil},
		{"empty record kept", []byte{22, 0xfe, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil},
		{"short", []byte{22, 0xfe}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := append([]byte(nil), tc.in...)
			for _, at := range tc.at {
				want[at+1], want[at+2] = 0xfe, 0xfd
			}
			got := append([]byte(nil), tc.in...)
			if n := normalizeHelloVersion(got); n != len(tc.at) {
				t.Fatalf("rewrote %d records, want %d", n, len(tc.at))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
		})
	}
}

// FuzzNormalizeHelloVersion: the record walker never panics, changes only version bytes, and a
// second pass changes nothing.
func FuzzNormalizeHelloVersion(f *testing.F) {
	f.Add(clientHello(nil, nil))
	p := clientHello(nil, nil)
	p[2] = 0
	f.Add(p)
	f.Add(append(append([]byte(nil), p...), p...))
	f.Add([]byte{22, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		out := append([]byte(nil), in...)
		normalizeHelloVersion(out)
		for i := range out {
			if out[i] != in[i] && out[i] != dtlsMinor12 {
				t.Fatalf("byte %d changed from %#x to %#x", i, in[i], out[i])
			}
		}
		again := append([]byte(nil), out...)
		if n := normalizeHelloVersion(again); n != 0 || !bytes.Equal(again, out) {
			t.Fatalf("second pass rewrote %d records", n)
		}
	})
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDTLSHandshakeFailureReasons: a failed handshake is counted by reason and logged at info
// with the peer and the reason.
func TestDTLSHandshakeFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reason  string
		timeout time.Duration                      // HandshakeTimeout
		client  func(t *testing.T, to Addr) string // returns the client's address
	}{
		{"unknown identity", failPSK, 10 * time.Second, func(t *testing.T, to Addr) string {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			addr := pc.LocalAddr().String()
			if c, err := dialDTLS(t, to, "nobody", "secretkey123", pc); err == nil {
				c.Close()
				t.Fatal("handshake with an unknown identity succeeded")
			}
			return addr
		}},
		{"client goes silent", failTimeout, 500 * time.Millisecond, func(t *testing.T, to Addr) string {
			dev := newRawPeer(t)
			cookieRoundTrip(t, dev, to) // then never followed up
			return dev.addr().AddrPort.String()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			te, _ := startDTLSLogged(t, nil, testConfig(), DTLSConfig{HandshakeTimeout: tc.timeout}, logger)
			from := tc.client(t, te.addr)
			eventually(t, "failure counted as "+tc.reason, func() bool {
				return te.counter(t, "lwota_transport_dtls_handshake_failures_total", "reason", tc.reason) == 1
			})
			eventually(t, "failure logged", func() bool {
				return strings.Contains(logs.String(), "level=INFO msg=\"transport: dtls handshake failed\" peer="+from+" reason="+tc.reason)
			})
			if got := te.counter(t, "lwota_transport_dtls_handshakes_total", "result", "failed"); got != 1 {
				t.Fatalf("failed handshakes %v, want 1", got)
			}
		})
	}
}
