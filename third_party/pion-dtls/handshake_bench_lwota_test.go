// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

import (
	"context"
	"testing"
	"time"

	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/transport/v5/dpipe"
)

// BenchmarkPSKHandshake is one DTLS 1.2 PSK handshake (extended master secret, cookie
// exchange), client and server in this process over an in-memory pipe: the allocations and CPU
// of both sides per handshake (lwota's patches 6 and later), for AES_128_CCM_8 (lwota's
// default) and the other PSK suites lwota offers.
func BenchmarkPSKHandshake(b *testing.B) {
	for _, suite := range []CipherSuiteID{
		TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM,
		TLS_PSK_WITH_AES_128_GCM_SHA256, TLS_PSK_WITH_AES_128_CBC_SHA256,
	} {
		b.Run(suite.String(), func(b *testing.B) { benchmarkPSKHandshake(b, suite) })
	}
}

func benchmarkPSKHandshake(b *testing.B, suite CipherSuiteID) {
	b.Helper()
	psk := func([]byte) ([]byte, error) { return []byte("lwota-bench-psk-0123456789abcdef"), nil }
	b.ReportAllocs()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ca, cb := dpipe.Pipe()
		// The client is closed once both sides are done: closed as soon as its own handshake
		// ends, its close_notify can reach the server before the server's state machine has
		// marked the handshake complete, which fails the server's HandshakeContext (v3.1.15 too).
		errc := make(chan error, 1)
		clientc := make(chan *Conn, 1)
		go func() {
			client, err := ClientWithOptions(dtlsnet.PacketConnFromConn(ca), ca.RemoteAddr(),
				WithPSK(psk), WithPSKIdentityHint([]byte("bench")),
				WithCipherSuites(suite),
				WithExtendedMasterSecret(RequestExtendedMasterSecret))
			if err == nil {
				clientc <- client
				err = client.HandshakeContext(ctx)
			}
			errc <- err
		}()
		server, err := ServerWithOptions(dtlsnet.PacketConnFromConn(cb), cb.RemoteAddr(),
			WithPSK(psk), WithCipherSuites(suite),
			WithExtendedMasterSecret(RequestExtendedMasterSecret))
		if err != nil {
			b.Fatal(err)
		}
		if err := server.HandshakeContext(ctx); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		_ = (<-clientc).Close()
		_ = server.Close()
		cancel()
	}
}
