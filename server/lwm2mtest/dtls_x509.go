package lwm2mtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	piondtls "github.com/pion/dtls/v3"
)

// DeviceX509 is a device's certificate account with its DM server (LwM2M Security Mode 2),
// as the Security object holds it: /0/x/3 its certificate, /0/x/5 its private key (PKCS#8
// DER), /0/x/4 the server's certificate, which the device pins: it trusts that certificate and
// no other, as LwM2M 1.1 Core §E.1 has the client check the server against the Server Public Key.
type DeviceX509 struct {
	Certificate       []byte // DER
	PrivateKey        []byte // PKCS#8 DER
	ServerCertificate []byte // DER; empty: verify against RootCAs instead
	RootCAs           *x509.CertPool
	ServerName        string // for RootCAs verification; default "localhost"
}

// options are pion's client options for the certificate handshake (the ECDHE-ECDSA suites
// LwM2M 1.1 §7.1.7 names).
func (x *DeviceX509) options() ([]piondtls.ClientOption, error) {
	key, err := x509.ParsePKCS8PrivateKey(x.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: certificate account: private key: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{x.Certificate}, PrivateKey: key}
	opts := []piondtls.ClientOption{
		piondtls.WithCertificates(cert),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
	}
	switch {
	case len(x.ServerCertificate) > 0:
		pinned := x.ServerCertificate
		opts = append(opts, piondtls.WithInsecureSkipVerify(true),
			piondtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
					return errors.New("lwm2mtest: the server's certificate is not the Server Public Key (/0/x/4)")
				}
				return nil
			}))
	case x.RootCAs != nil:
		name := x.ServerName
		if name == "" {
			name = "localhost"
		}
		opts = append(opts, piondtls.WithRootCAs(x.RootCAs), piondtls.WithServerName(name))
	default:
		return nil, errors.New("lwm2mtest: certificate account: no server certificate nor roots to check the server with")
	}
	return opts, nil
}
