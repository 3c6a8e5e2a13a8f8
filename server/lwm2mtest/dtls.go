package lwm2mtest

import (
	"context"
	"fmt"
	"net"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// CoAP over DTLS 1.2 with the device's pre-shared key (TLS_PSK_WITH_AES_128_CCM_8, pion's
// client): the device's link to the server (go-coap's DTLS client on top) and the fetcher's
// link to a coaps:// package. Each dial is a new socket, so every reboot is a new session from
// a new port.

// secure reports whether the device has a PSK credential, and so speaks DTLS.
func (d *Device) secure() bool {
	return (d.cfg.PSKIdentity != "" && len(d.cfg.PSK) > 0) || d.cfg.X509 != nil
}

// dialDTLS handshakes with host from a new UDP socket under the device's PSK, within
// RequestTimeout. Closing the connection closes the socket.
func (d *Device) dialDTLS(ctx context.Context, host string, laddr *net.UDPAddr) (*piondtls.Conn, error) {
	conn, _, err := d.dialDTLSRebinding(ctx, host, laddr, false)
	return conn, err
}

// dialDTLSRebinding is dialDTLS; with rebinding, the socket is a rebindingConn the caller can
// move to a new port (profiles_nat.go). laddr is the socket's local address; nil: any.
func (d *Device) dialDTLSRebinding(ctx context.Context, host string, laddr *net.UDPAddr, rebinding bool) (*piondtls.Conn, *rebindingConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		return nil, nil, err
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, nil, err
	}
	var sock net.PacketConn = pc
	var nat *rebindingConn
	if rebinding {
		nat = &rebindingConn{cur: pc}
		sock = nat
	}
	if v := d.cfg.ClientHelloRecordVersion; v != 0 {
		sock = &helloVersionConn{PacketConn: sock, version: v}
	}
	opts := []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return d.cfg.PSK, nil }),
		piondtls.WithPSKIdentityHint([]byte(d.cfg.PSKIdentity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	}
	if d.cfg.X509 != nil {
		if opts, err = d.cfg.X509.options(); err != nil {
			pc.Close()
			return nil, nil, err
		}
	}
	if d.cfg.ConnectionID {
		opts = append(opts, piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
		if g := d.cfg.CIDPaddingGranularity; g > 1 {
			opts = append(opts, piondtls.WithPaddingLengthGenerator(cidPadding(g))) // profiles_pionrec.go
		}
	}
	conn, err := piondtls.ClientWithOptions(sock, raddr, opts...)
	if err != nil {
		sock.Close()
		return nil, nil, fmt.Errorf("dtls %s: %w", host, err)
	}
	hctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("dtls handshake with %s: %w", host, err)
	}
	return conn, nat, nil
}

// dialCoAPS is udp.Dial over a DTLS session with server; closing the client closes the
// session and its socket.
func (d *Device) dialCoAPS(ctx context.Context, server string, laddr *net.UDPAddr, opts []udp.Option) (*client.Conn, error) {
	conn, err := d.dialDTLS(ctx, server, laddr)
	if err != nil {
		return nil, err
	}
	return coapdtls.Client(conn, append(opts, options.WithCloseSocket())...), nil
}
