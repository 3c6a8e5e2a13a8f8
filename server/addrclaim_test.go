package server_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestStaleAddressTakenByAnotherDevice: device A powers off without de-registering, so its
// registration still names its address; the kernel then gives A's port to device B's new
// socket. lwota must never send A's requests to B there (B would answer a Read, take a Package
// URI or an Execute meant for A, and its answers would be taken for A's): A is away until it
// registers again, and then it is reached at its new address. Over NoSec only the order of
// Registers tells the two apart (B's Register from the address takes it from A's
// registration); over DTLS the session's identity does too, before B registers at all.
func TestStaleAddressTakenByAnotherDevice(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
		// registerB: B registers from A's old address; else B only handshakes there (DTLS).
		registerB bool
	}{
		{"nosec", false, true},
		{"dtls", true, true},
		{"dtls session before its register", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			server := h.srv.Addr().String()
			if tc.secure {
				server = h.srv.CoAPSAddr().String()
			}
			device := func(ep, maker string, port int) lwm2mtest.DeviceConfig {
				c := lwm2mtest.DeviceConfig{Endpoint: ep, Manufacturer: maker, LocalPort: port, RequestTimeout: 30 * time.Second}
				if tc.secure {
					c.PSKIdentity, c.PSK = "id-"+ep, []byte("key-of-"+ep)
					if err := h.creds.Put(ctx, ep, c.PSKIdentity, c.PSK); err != nil {
						t.Fatal(err)
					}
				}
				return c
			}
			start := func(cfg lwm2mtest.DeviceConfig) *lwm2mtest.Device {
				d := lwm2mtest.NewDevice(cfg, nil)
				t.Cleanup(func() { _ = d.Close() })
				if err := d.Start(ctx, server); err != nil {
					t.Fatalf("start %s: %v", cfg.Endpoint, err)
				}
				return d
			}
			maker := func(ep string) (string, error) {
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				res, err := h.srv.DoNow(rctx, ep, dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)})
				if err != nil {
					return "", err
				}
				if len(res.Records) != 1 {
					t.Fatalf("read of %s: %+v", ep, res)
				}
				return res.Records[0].Value.Str, nil
			}

			cfgA := device("dev-a", "maker-a", 0)
			a := start(cfgA)
			if got, err := maker("dev-a"); err != nil || got != "maker-a" {
				t.Fatalf("dev-a reads %q, %v", got, err)
			}
			regA, _ := h.srv.Registry().Get("dev-a")
			_ = a.Close() // powered off: no De-register, the registration stays live
			port := int(regA.Addr.AddrPort.Port())

			var bGot chan []byte // what B's bare session received, when B does not register
			if tc.registerB {
				start(device("dev-b", "maker-b", port))
				regB, _ := h.srv.Registry().Get("dev-b")
				if regB.Addr != regA.Addr {
					t.Fatalf("dev-b registered from %s, not dev-a's old address %s", regB.Addr, regA.Addr)
				}
				if got, err := maker("dev-b"); err != nil || got != "maker-b" {
					t.Fatalf("dev-b reads %q, %v", got, err)
				}
			} else {
				cfgB := device("dev-b", "maker-b", port)
				bGot = bareSession(t, ctx, server, port, cfgB.PSKIdentity, cfgB.PSK)
			}

			_, err := maker("dev-a")
			switch {
			case err == nil:
				t.Fatal("dev-a's read was answered by the device now at its old address")
			case !errors.Is(err, dm.ErrAsleep):
				t.Fatalf("dev-a's read: %v, want dm.ErrAsleep (away until it registers again)", err)
			}
			if bGot != nil {
				select {
				case b := <-bGot:
					t.Fatalf("dev-b's session got dev-a's request (%d bytes)", len(b))
				default:
				}
			}

			// A comes back from a new socket and registers: it is reached there again.
			cfgA.LocalPort = 0
			start(cfgA)
			if got, err := maker("dev-a"); err != nil || got != "maker-a" {
				t.Fatalf("dev-a after its new Register reads %q, %v", got, err)
			}
		})
	}
}

// bareSession handshakes a DTLS session with identity from 127.0.0.1:port to server and sends
// nothing over it, as a device that has not registered yet. What it receives goes to the
// channel returned.
func bareSession(t *testing.T, ctx context.Context, server string, port int, identity string, key []byte) chan []byte {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("bind the old port %d: %v", port, err)
	}
	conn, err := dtls.ClientWithOptions(pc, raddr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		t.Fatalf("handshake of %s: %v", identity, err)
	}
	// A CoAP ping (Empty CON, RFC 7252 §4.3), answered with RST once the server's side of the
	// session is established too: the client's handshake may end before the server's.
	if _, err := conn.Write([]byte{0x40, 0x00, 0x12, 0x34}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := conn.Read(buf); err != nil || n < 4 || buf[0]>>4&3 != 3 {
		t.Fatalf("ping over %s's session: % x, %v; want an RST", identity, buf[:n], err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	got := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case got <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}()
	return got
}
