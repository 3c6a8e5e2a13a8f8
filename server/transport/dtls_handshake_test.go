package transport

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkDTLSHandshakeModes: full PSK handshakes (TLS_PSK_WITH_AES_128_CCM_8, cookie exchange
// included) from pion clients on new sockets, client and server in this process. With
// -memprofile, the transport's own allocations per handshake show beside pion's.
func BenchmarkDTLSHandshakeModes(b *testing.B) {
	for _, mode := range []struct {
		name string
		hv   HelloVerify
	}{{"auto", HelloVerifyAuto}, {"pion-cookie", HelloVerifyPion}} {
		b.Run(mode.name, func(b *testing.B) {
			te, link := startDTLS(b, nil, DTLSConfig{HelloVerify: mode.hv, HandshakeTimeout: 5 * time.Second})
			link.start()
			<-link.probed
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := dialDTLS(b, te.addr, "dev1", "secretkey123", nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
		})
	}
}

// stackProbeLoggers is a pion LoggerFactory that, when pion asks it for a connection's logger
// (in createConn, on the session's goroutine, some ten frames into the connection's setup),
// checks whether 3 KiB more of stack there would grow (move) the goroutine's stack.
type stackProbeLoggers struct {
	quietDTLSLoggers
	moved chan bool
}

func (f stackProbeLoggers) NewLogger(scope string) logging.LeveledLogger {
	select {
	case f.moved <- stackMoved(useStack3K):
	default:
	}
	return f.quietDTLSLoggers.NewLogger(scope)
}

// stackMoved reports whether calling fn copied the calling goroutine's stack elsewhere (it
// grew): a local's address, kept as a number the runtime does not adjust, changes.
//
//go:noinline
func stackMoved(fn func()) bool {
	var local byte
	before := uintptr(unsafe.Pointer(&local))
	fn()
	return uintptr(unsafe.Pointer(&local)) != before
}

// useStack3K needs 3 KiB of stack: about what the rest of pion's connection setup and the
// session's first steps need below createConn.
//
//go:noinline
func useStack3K() {
	var frame [3 << 10]byte
	keepStackFrame(frame[:])
}

// TestSessionStackGrownAtStart: a session's goroutine grows its stack before pion's connection
// setup, so that setup (options, config, cipher suites) does not copy a deep stack. Without
// growSessionStack the stack moves there. Under -race frames are larger and the stack has grown
// before that point either way, so the test cannot tell there.
func TestSessionStackGrownAtStart(t *testing.T) {
	checkLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewDTLS(pc, nil, testConfig(), DTLSConfig{PSK: testKeys, HelloVerify: HelloVerifyStateless}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	probe := stackProbeLoggers{moved: make(chan bool, 1)}
	l := e.link.(*dtlsLink)
	l.opts = append(l.opts, dtls.WithLoggerFactory(probe)) // before Serve starts the link
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	to := Addr{Network: DTLS, AddrPort: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	c, err := dialDTLS(t, to, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	select {
	case moved := <-probe.moved:
		if moved {
			t.Fatal("the session's stack grew in pion's connection setup")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pion never asked for the session's logger")
	}
}

// recordingPacketConn keeps a copy of every datagram read through it.
type recordingPacketConn struct {
	net.PacketConn
	mu   sync.Mutex
	read [][]byte
}

func (c *recordingPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		c.mu.Lock()
		c.read = append(c.read, append([]byte(nil), b[:n]...))
		c.mu.Unlock()
	}
	return n, from, err
}

func (c *recordingPacketConn) datagrams() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.read)
}

// flightRecords lists the records of datagram p as "type" (content type) or, for an epoch-0
// handshake record, "hs:N" (its handshake message type).
func flightRecords(p []byte) []string {
	var out []string
	for len(p) >= recordHeader {
		n := recordHeader + (int(p[11])<<8 | int(p[12]))
		if n > len(p) {
			break
		}
		switch {
		case p[0] == handshakeType && p[3] == 0 && p[4] == 0 && n > recordHeader:
			out = append(out, fmt.Sprintf("hs:%d", p[recordHeader]))
		default:
			out = append(out, fmt.Sprint(p[0]))
		}
		p = p[n:]
	}
	return out
}

// TestDTLSHandshakeOneDatagramPerFlight: the server sends each flight of a PSK handshake as one
// datagram (RFC 6347 §4.1.1 lets records of a flight share a datagram within the MTU): the
// HelloVerifyRequest, ServerHello with ServerHelloDone, ChangeCipherSpec with Finished. Each
// datagram is a socket write and a wake-up of the peer; pion v3.1.15 already packs a flight's
// records (compactRawPackets), and this keeps it so. Retransmissions on a slow machine repeat
// whole flights, so they keep the shape too.
func TestDTLSHandshakeOneDatagramPerFlight(t *testing.T) {
	for _, tc := range []struct {
		name string
		hv   HelloVerify
	}{{"stateless cookie", HelloVerifyStateless}, {"pion's cookie", HelloVerifyPion}} {
		t.Run(tc.name, func(t *testing.T) {
			te, _ := startDTLS(t, nil, DTLSConfig{HelloVerify: tc.hv})
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingPacketConn{PacketConn: pc}
			c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", rec)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := map[string][]string{
				"hs:3": {"hs:3"},          // HelloVerifyRequest, alone
				"hs:2": {"hs:2", "hs:14"}, // ServerHello and ServerHelloDone
				"20":   {"20", "22"},      // ChangeCipherSpec and the encrypted Finished
			}
			seen := map[string]int{}
			for _, d := range rec.datagrams() {
				got := flightRecords(d)
				if len(got) == 0 {
					t.Fatalf("datagram % x: no record", d)
				}
				if w, ok := want[got[0]]; !ok || !slices.Equal(got, w) {
					t.Fatalf("server datagram with records %v, want one of %v", got, want)
				}
				seen[got[0]]++
			}
			if len(seen) != len(want) {
				t.Fatalf("flights seen %v, want each of %v", seen, want)
			}
		})
	}
}
