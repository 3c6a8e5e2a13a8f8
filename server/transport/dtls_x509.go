package transport

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pion/dtls/v3"
)

// The certificate cipher suites lwota offers when X509 is set (LwM2M 1.1 §7.1.7 mandates
// AES_128_CCM_8 for certificate mode too).
const (
	TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8      CipherSuite = 0xC0AE //nolint:revive // IANA name
	TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 CipherSuite = 0xC02B //nolint:revive // IANA name
)

// X509IdentityPrefix starts the Peer.Identity of a session authenticated by a certificate:
// "x509:" and the name the certificate gives (CertName). PSK identities never start with it, so
// the two kinds of identity cannot be mistaken for each other.
const X509IdentityPrefix = "x509:"

// CertificateName returns the certificate name in a Peer.Identity, and whether the identity is
// a certificate's at all.
func CertificateName(identity string) (string, bool) {
	return strings.CutPrefix(identity, X509IdentityPrefix)
}

// CertName says which field of a device certificate names the device.
type CertName string

const (
	// CertNameCN: the subject's Common Name (the default).
	CertNameCN CertName = "cn"
	// CertNameSAN: the first URI subject alternative name (urn:imei:..., urn:dev:...), else the
	// first DNS name.
	CertNameSAN CertName = "san"
)

// maxCertNameLen bounds a certificate name; longer ones are refused at the handshake (an LwM2M
// endpoint name is not meant to be longer).
const maxCertNameLen = 255

// X509Config adds certificate authentication (ECDHE-ECDSA) to a DTLS Endpoint, beside PSK. A
// device presents a certificate that chains to ClientCAs and carries the ClientAuth extended key
// usage (or none); lwota presents Certificate.
type X509Config struct {
	// Certificate is the server's chain and its ECDSA private key.
	Certificate tls.Certificate
	// ClientCAs are the roots device certificates must chain to (intermediates the device sends
	// are used).
	ClientCAs *x509.CertPool
	// Name picks the certificate field that names the device. Default CertNameCN.
	Name CertName
}

// LoadX509Config reads the CA bundle (PEM), the server certificate chain (PEM) and its private
// key (PEM) from files, as lwota serve's --dtls-ca, --dtls-cert and --dtls-key give them.
func LoadX509Config(caFile, certFile, keyFile string, name CertName) (*X509Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("transport: dtls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("transport: dtls ca %s: no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("transport: dtls certificate: %w", err)
	}
	c := &X509Config{Certificate: cert, ClientCAs: pool, Name: name}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check fills the default name field and refuses what the handshake could never use.
func (c *X509Config) check() error {
	switch c.Name {
	case "":
		c.Name = CertNameCN
	case CertNameCN, CertNameSAN:
	default:
		return fmt.Errorf("transport: dtls certificate name %q: want %q or %q", c.Name, CertNameCN, CertNameSAN)
	}
	if c.ClientCAs == nil {
		return errors.New("transport: dtls: no client CAs")
	}
	if len(c.Certificate.Certificate) == 0 {
		return errors.New("transport: dtls: no server certificate")
	}
	// The suites offered are ECDHE_ECDSA: an RSA or Ed25519 key could never sign the handshake.
	if _, ok := c.Certificate.PrivateKey.(*ecdsa.PrivateKey); !ok {
		return fmt.Errorf("transport: dtls: the server key is %T, want ECDSA (the certificate suites are ECDHE_ECDSA)", c.Certificate.PrivateKey)
	}
	return nil
}

// name returns the device name cert carries in the field c.Name picks.
func (c *X509Config) name(cert *x509.Certificate) (string, error) {
	var n string
	switch c.Name {
	case CertNameSAN:
		if len(cert.URIs) > 0 {
			n = cert.URIs[0].String()
		} else if len(cert.DNSNames) > 0 {
			n = cert.DNSNames[0]
		}
	default:
		n = cert.Subject.CommonName
	}
	if n == "" || len(n) > maxCertNameLen || !utf8.ValidString(n) {
		return "", fmt.Errorf("transport: dtls: certificate %q has no usable %s name", cert.Subject, c.Name)
	}
	return n, nil
}

// isCertificateSuite reports an ECDHE_ECDSA suite.
func isCertificateSuite(s CipherSuite) bool {
	return s == TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 || s == TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ||
		s == CipherSuite(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM) || s == CipherSuite(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384) ||
		s == CipherSuite(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA) || s == CipherSuite(dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
}

// x509Defaults completes a DTLSConfig whose X509 is set: the certificate suites join the
// default list, and an explicit list must hold one.
func (c DTLSConfig) x509Defaults(explicitSuites bool) (DTLSConfig, error) {
	if c.X509 == nil {
		return c, nil
	}
	x := *c.X509
	if err := x.check(); err != nil {
		return c, err
	}
	c.X509 = &x
	// server.DefaultConfig copies the PSK defaults in: they count as "not chosen".
	if !explicitSuites || slices.Equal(c.CipherSuites, DefaultDTLSConfig().CipherSuites) {
		c.CipherSuites = append(c.CipherSuites, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
		return c, nil
	}
	for _, s := range c.CipherSuites {
		if isCertificateSuite(s) {
			return c, nil
		}
	}
	return c, errors.New("transport: dtls: X509 is set but CipherSuites has no ECDHE_ECDSA suite")
}

// x509Options are the handshake options of certificate authentication: the server's
// certificate, and a device certificate required and verified against the CAs whenever a
// certificate suite is chosen (pion skips client authentication for PSK suites). The name check
// runs inside the handshake, so a certificate without a usable name fails it.
func (c DTLSConfig) x509Options() []dtls.ServerOption {
	if c.X509 == nil {
		return nil
	}
	x := c.X509
	return []dtls.ServerOption{
		dtls.WithCertificates(x.Certificate),
		dtls.WithClientCAs(x.ClientCAs),
		dtls.WithClientAuth(dtls.RequireAndVerifyClientCert),
		dtls.WithVerifyPeerCertificate(func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 {
				return errors.New("transport: dtls: no verified certificate chain")
			}
			_, err := x.name(chains[0][0])
			return err
		}),
	}
}

// sessionIdentity is the Peer.Identity of an established session: X509IdentityPrefix and the
// certificate's name for a certificate session, else the PSK identity.
func (l *dtlsLink) sessionIdentity(st dtls.State) (string, error) {
	if len(st.PeerCertificates) == 0 {
		return string(st.IdentityHint), nil
	}
	if l.dc.X509 == nil {
		return "", errors.New("transport: dtls: a certificate session without X509 configured")
	}
	cert, err := x509.ParseCertificate(st.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("transport: dtls: peer certificate: %w", err)
	}
	name, err := l.dc.X509.name(cert)
	if err != nil {
		return "", err
	}
	return X509IdentityPrefix + name, nil
}
