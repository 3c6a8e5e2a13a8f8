package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// simTransport is how `lwota sim` devices reach the server: over UDP (and DTLS), or CoAP over
// TCP or TLS (RFC 8323) with the TLS files.
type simTransport struct {
	Transport              string
	TLSCA, TLSCert, TLSKey string
}

func (s *simTransport) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.Transport, "transport", lwm2mtest.TransportUDP, "how devices reach the server: udp, tcp (coap+tcp) or tls (coaps+tcp); with tcp or tls --server is lwota's --coap-tcp-addr or --coaps-tcp-addr and the binding is T")
	fs.StringVar(&s.TLSCA, "tls-ca", "", "with --transport tls: PEM file of the CA lwota's certificate chains to")
	fs.StringVar(&s.TLSCert, "tls-cert", "", "with --transport tls: PEM file of the devices' certificate (one for all; lwota with --coaps-tcp-ca names the endpoint by it)")
	fs.StringVar(&s.TLSKey, "tls-key", "", "with --transport tls: PEM file of the private key of --tls-cert")
}

func (s simTransport) check() error {
	switch s.Transport {
	case lwm2mtest.TransportUDP, lwm2mtest.TransportTCP:
		if s.TLSCA != "" || s.TLSCert != "" || s.TLSKey != "" {
			return fmt.Errorf("sim: --tls-ca, --tls-cert and --tls-key go with --transport tls")
		}
	case lwm2mtest.TransportTLS:
		if (s.TLSCert == "") != (s.TLSKey == "") {
			return fmt.Errorf("sim: give both --tls-cert and --tls-key, or neither")
		}
	default:
		return fmt.Errorf("sim: --transport %q: want udp, tcp or tls", s.Transport)
	}
	return nil
}

// apply sets the devices' transport, binding and TLS configuration.
func (s simTransport) apply(c *lwm2mtest.DeviceConfig) error {
	c.Transport = s.Transport
	if s.Transport == lwm2mtest.TransportUDP {
		return nil
	}
	if c.Binding == "" || c.Binding == "U" {
		c.Binding = "T"
	}
	if s.Transport != lwm2mtest.TransportTLS {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSCA != "" {
		pem, err := os.ReadFile(s.TLSCA)
		if err != nil {
			return fmt.Errorf("sim: --tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("sim: --tls-ca %s: no PEM certificate", s.TLSCA)
		}
	}
	if s.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return fmt.Errorf("sim: --tls-cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	c.TLS = tc
	return nil
}
