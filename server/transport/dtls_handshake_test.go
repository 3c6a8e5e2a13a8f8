package transport

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
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
