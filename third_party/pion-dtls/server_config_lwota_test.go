// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota's patch 35 (LWOTA-PATCHES.md): a server connection's cipher suites are parsed
// once, and WithCipherSuites copies its list once, not per connection.

import (
	"net"
	"testing"

	"github.com/pion/dtls/v3/internal/ciphersuite"
)

// TestServerParsesCipherSuitesOnce: validating a server's config parses its cipher suites (each
// a new object that will hold the session's keys), and the connection then uses those, instead
// of parsing them a second time. On v3.1.15 the custom suites' constructor ran twice per
// connection.
func TestServerParsesCipherSuitesOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(custom func() []CipherSuite) func(net.PacketConn, net.Addr) (*Conn, error)
	}{
		{"ServerWithOptions", func(custom func() []CipherSuite) func(net.PacketConn, net.Addr) (*Conn, error) {
			return func(pc net.PacketConn, addr net.Addr) (*Conn, error) {
				return ServerWithOptions(pc, addr, WithCustomCipherSuites(custom),
					WithPSK(func([]byte) ([]byte, error) { return []byte{1}, nil }),
					WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
			}
		}},
		{"ClientWithOptions", func(custom func() []CipherSuite) func(net.PacketConn, net.Addr) (*Conn, error) {
			return func(pc net.PacketConn, addr net.Addr) (*Conn, error) {
				return ClientWithOptions(pc, addr, WithCustomCipherSuites(custom),
					WithPSK(func([]byte) ([]byte, error) { return []byte{1}, nil }), WithPSKIdentityHint([]byte("id")),
					WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var made []CipherSuite
			custom := func() []CipherSuite {
				s := &ciphersuite.TLSPskWithAes128GcmSha256{}
				made = append(made, s)

				return []CipherSuite{s}
			}
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = pc.Close() }()
			conn, err := tc.build(custom)(pc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			if len(made) != 1 {
				t.Fatalf("the custom suites were made %d times for one connection, want 1", len(made))
			}
			// The connection offers the very suite objects the validation parsed.
			if got := conn.handshakeConfig.localCipherSuites; len(got) != 2 || got[0] != made[0] {
				t.Fatalf("connection's suites %v, want the validated %v first", got, made)
			}
		})
	}
}

// maxServerConnAllocs bounds TestServerWithOptionsAllocations: 78 measured with the patch, 84
// without (the four suites parsed twice, the suite list copied twice).
const maxServerConnAllocs = 80

// TestServerWithOptionsAllocations: what a server connection costs before its handshake, with
// options as lwota gives them.
func TestServerWithOptionsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("-race changes allocation counts")
	}
	opts := []ServerOption{
		WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM, TLS_PSK_WITH_AES_128_GCM_SHA256,
			TLS_PSK_WITH_AES_128_CBC_SHA256),
		WithExtendedMasterSecret(RequestExtendedMasterSecret),
		WithPSK(func([]byte) ([]byte, error) { return []byte{1}, nil }),
		WithInsecureSkipVerifyHello(true),
		WithMTU(1200),
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := ServerWithOptions(pc, addr, opts...); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per server connection", allocs)
	if allocs > maxServerConnAllocs {
		t.Fatalf("%.0f allocations per server connection, want at most %d", allocs, maxServerConnAllocs)
	}
}
