package lwm2mtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// PKI is a throwaway certificate authority for tests of certificate modes (coaps+tcp, DTLS
// with X.509): a CA, and server and device certificates it issues, all ECDSA P-256, valid for
// a day.
type PKI struct {
	CA    *x509.Certificate
	CAPEM []byte
	Pool  *x509.CertPool
	key   *ecdsa.PrivateKey
}

// NewPKI makes a CA.
func NewPKI() (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lwm2mtest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &PKI{CA: ca, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: pool, key: key}, nil
}

// Issued is a certificate the PKI issued, as tls wants it and as PEM files want it.
type Issued struct {
	TLS     tls.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Server issues a certificate for a server at 127.0.0.1 and localhost.
func (p *PKI) Server() (Issued, error) {
	return p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "lwota"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Device issues a device certificate whose Common Name is endpoint.
func (p *PKI) Device(endpoint string) (Issued, error) {
	return p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: endpoint},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ClientTLS is the TLS configuration of a device trusting p's CA, presenting dev (when it has
// a certificate).
func (p *PKI) ClientTLS(dev *Issued) *tls.Config {
	c := &tls.Config{RootCAs: p.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if dev != nil {
		c.Certificates = []tls.Certificate{dev.TLS}
	}
	return c
}

func (p *PKI) issue(tmpl *x509.Certificate) (Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return Issued{}, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.key)
	if err != nil {
		return Issued{}, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Issued{}, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	out := Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
	if out.TLS, err = tls.X509KeyPair(out.CertPEM, out.KeyPEM); err != nil {
		return Issued{}, fmt.Errorf("lwm2mtest: pki: %w", err)
	}
	return out, nil
}
