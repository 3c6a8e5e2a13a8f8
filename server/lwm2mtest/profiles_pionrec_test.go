package lwm2mtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

func TestCIDPadding(t *testing.T) {
	for _, g := range []int{2, 4, 16, 64} {
		pad := cidPadding(g)
		for n := range uint(300) {
			z := pad(n)
			if (n+1+z)%uint(g) != 0 || z >= uint(g) { //nolint:gosec // small
				t.Fatalf("granularity %d, %d-byte content: %d zeros, inner plaintext of %d bytes", g, n, z, n+1+z)
			}
		}
	}
}

// udpTap relays datagrams between one client and server, keeping a copy of the client's.
type udpTap struct {
	pc     net.PacketConn
	mu     sync.Mutex
	client net.Addr
	sent   [][]byte
}

func newUDPTap(t *testing.T, server net.Addr) *udpTap {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	up, err := net.Dial("udp", server.String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	tap := &udpTap{pc: pc}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = pc.Close(); _ = up.Close(); wg.Wait() })
	wg.Go(func() { // client -> server
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			tap.mu.Lock()
			tap.client = from
			tap.sent = append(tap.sent, append([]byte(nil), buf[:n]...))
			tap.mu.Unlock()
			_, _ = up.Write(buf[:n])
		}
	})
	wg.Go(func() { // server -> client
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			tap.mu.Lock()
			to := tap.client
			tap.mu.Unlock()
			if to != nil {
				_, _ = pc.WriteTo(buf[:n], to)
			}
		}
	})
	return tap
}

// cidRecords returns the length fields of the connection id records (content type 25) that
// end the client's datagrams (a Finished ends its flight; application data goes alone). The id
// is the server's, of a length the record itself tells: the one that makes the record end the
// datagram.
func (tap *udpTap) cidRecords() []int {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	var lens []int
	for _, d := range tap.sent {
		for r := d; len(r) >= 13; {
			if r[0] == 25 {
				for cidLen := 1; cidLen <= 32 && 13+cidLen <= len(r); cidLen++ {
					hs := 13 + cidLen
					if n := int(r[hs-2])<<8 | int(r[hs-1]); hs+n == len(r) {
						lens = append(lens, n)
						break
					}
				}
				break
			}
			n := 13 + (int(r[11])<<8 | int(r[12]))
			if n > len(r) {
				break
			}
			r = r[n:]
		}
	}
	return lens
}

// The cid-padded profile: a device with it registers with lwota's transport (connection ids
// on) over DTLS, and the id records it sent during the handshake (the Finished) carry an inner
// plaintext padded to 16 bytes: with CCM_8, 8 bytes of explicit nonce and 8 of tag around it.
func TestProfileCIDPadded(t *testing.T) {
	registered := make(chan struct{}, 1)
	h := transport.HandlerFunc(func(_ context.Context, _ transport.Peer, r *transport.Message) *transport.Message {
		if r.Code == transport.POST && r.Path == "/rd" {
			select {
			case registered <- struct{}{}:
			default:
			}
			m := transport.NewMessage(transport.Created)
			m.LocationPath = []string{"rd", "1"}
			return m
		}
		return transport.NewMessage(transport.Changed)
	})
	pc, _ := serveDTLSPSK(t, h)
	tap := newUDPTap(t, pc.LocalAddr())

	cfg := DeviceConfig{Endpoint: "urn:dev:cid-padded", PSKIdentity: "id-1", PSK: []byte("secretkey123"), RequestTimeout: 30 * time.Second}
	if err := ApplyProfiles(&cfg, ProfileCIDPadded); err != nil {
		t.Fatal(err)
	}
	d := NewDevice(cfg, nil)
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Start(ctxT(t), tap.pc.LocalAddr().String()); err != nil {
		t.Fatalf("start: %v", err)
	}
	select {
	case <-registered:
	case <-ctxT(t).Done():
		t.Fatal("not registered")
	}
	var padded bool
	for _, n := range tap.cidRecords() {
		if inner := n - 16; inner > 25 && inner%MbedTLSCIDPaddingGranularity == 0 { // Finished: 24 bytes and its type
			padded = true
		}
	}
	if !padded {
		t.Fatalf("no connection id record with an inner plaintext padded to %d bytes", MbedTLSCIDPaddingGranularity)
	}
}
