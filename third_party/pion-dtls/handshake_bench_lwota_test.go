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

// BenchmarkPSKHandshake is one DTLS 1.2 PSK handshake (AES_128_CCM_8, extended master secret,
// cookie exchange), client and server in this process over an in-memory pipe: the allocations
// and CPU of both sides per handshake (lwota's patches 6 and later).
func BenchmarkPSKHandshake(b *testing.B) {
	psk := func([]byte) ([]byte, error) { return []byte("lwota-bench-psk-0123456789abcdef"), nil }
	b.ReportAllocs()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ca, cb := dpipe.Pipe()
		errc := make(chan error, 1)
		go func() {
			client, err := ClientWithOptions(dtlsnet.PacketConnFromConn(ca), ca.RemoteAddr(),
				WithPSK(psk), WithPSKIdentityHint([]byte("bench")),
				WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8),
				WithExtendedMasterSecret(RequestExtendedMasterSecret))
			if err == nil {
				err = client.HandshakeContext(ctx)
				defer client.Close() //nolint:errcheck
			}
			errc <- err
		}()
		server, err := ServerWithOptions(dtlsnet.PacketConnFromConn(cb), cb.RemoteAddr(),
			WithPSK(psk), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8),
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
		_ = server.Close()
		cancel()
	}
}
