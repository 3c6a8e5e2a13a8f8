package lwm2mtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pion/dtls/v3"
)

// ServeBareDTLS runs a bare pion/dtls server on a free loopback port until ctx ends: the PSK
// suites, extended master secret and cookie exchange lwota uses, psk as its only PSK lookup, and
// nothing else: each session's datagrams are read and dropped. It prints "listening ADDR" on
// stdout once ready. `lwota bench dtls` compares lwota's server CPU per handshake with it.
func ServeBareDTLS(ctx context.Context, stdout io.Writer, psk func(identity []byte) ([]byte, error)) error {
	ln, err := dtls.ListenWithOptions("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)},
		dtls.WithPSK(psk),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
	)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { _ = ln.Close() })
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		go func() {
			defer c.Close()
			dc, ok := c.(*dtls.Conn)
			if !ok {
				return
			}
			hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := dc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				return
			}
			buf := make([]byte, 1500)
			for {
				if _, err := dc.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}
