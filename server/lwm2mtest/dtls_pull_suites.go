package lwm2mtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	piondtls "github.com/pion/dtls/v3"
)

// DTLSSuite is a cipher suite a load device handshakes with, by the short name the benchmarks
// take (lwota bench pull --cipher).
type DTLSSuite struct {
	Name string
	ID   piondtls.CipherSuiteID
	// Certificate: the suite authenticates with certificates (ECDHE_ECDSA), not a PSK.
	Certificate bool
}

// DTLSSuites returns the suites LwM2M devices use (LwM2M 1.1 §7.1.7), CCM_8 first.
func DTLSSuites() []DTLSSuite {
	return []DTLSSuite{
		{Name: "psk-ccm8", ID: piondtls.TLS_PSK_WITH_AES_128_CCM_8},
		{Name: "psk-gcm", ID: piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256},
		{Name: "ecdhe-ccm8", ID: piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, Certificate: true},
	}
}

// ParseDTLSSuites reads a comma-separated list of DTLSSuites names.
func ParseDTLSSuites(list string) ([]DTLSSuite, error) {
	var out []DTLSSuite
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range DTLSSuites() {
			if s.Name == name {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			names := make([]string, len(DTLSSuites()))
			for i, s := range DTLSSuites() {
				names[i] = s.Name
			}
			return nil, fmt.Errorf("lwm2mtest: cipher suite %q: want one of %s", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// DTLSLoadClient is how load devices handshake: with Suite, as psk(i) for a PSK suite, or
// presenting Certificate and trusting RootCAs (for the server name "localhost") for a
// certificate suite.
type DTLSLoadClient struct {
	Suite       DTLSSuite
	PSK         func(i int) PSK
	Certificate tls.Certificate
	RootCAs     *x509.CertPool
}

// Dial handshakes device i with the server at raddr from a new UDP socket connected to it.
func (c DTLSLoadClient) Dial(ctx context.Context, raddr *net.UDPAddr, i int) (*piondtls.Conn, error) {
	return c.dial(ctx, raddr, i, lendingPacketConn) // dtls_lend.go
}

// dial is Dial with the socket wrapped for pion by wrap.
func (c DTLSLoadClient) dial(ctx context.Context, raddr *net.UDPAddr, i int, wrap func(*net.UDPConn) net.PacketConn) (*piondtls.Conn, error) {
	opts := []piondtls.ClientOption{piondtls.WithCipherSuites(c.Suite.ID)}
	if c.Suite.Certificate {
		opts = append(opts, piondtls.WithCertificates(c.Certificate), piondtls.WithRootCAs(c.RootCAs),
			piondtls.WithServerName("localhost"), piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
	} else {
		psk := c.PSK(i)
		opts = append(opts, piondtls.WithPSK(func([]byte) ([]byte, error) { return psk.Key, nil }),
			piondtls.WithPSKIdentityHint([]byte(psk.Identity)))
	}
	// A connected socket, as the plain pull devices have (PullLoad) and as pion's own Dial makes:
	// an unconnected one made the kernel route every datagram sent (and, bound to the
	// unspecified address, sent IPv4 through an IPv6 socket), a cost the plain devices do not pay.
	uc, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	conn, err := piondtls.ClientWithOptions(wrap(uc), raddr, opts...)
	if err != nil {
		uc.Close()
		return nil, err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
