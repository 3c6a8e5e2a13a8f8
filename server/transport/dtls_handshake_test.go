package transport

import (
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
