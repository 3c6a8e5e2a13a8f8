package bootstrap

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/lwota/lwota/server/credentials"
)

// SecretLabelX509Key labels the sealed private key of a certificate account (credentials.SealSecret).
const SecretLabelX509Key = "bootstrap-x509-key"

// X509Account is the device's certificate account with the DM server (Security Mode 2): what
// /0/x/3, /0/x/4 and /0/x/5 are written with.
type X509Account struct {
	Certificate       []byte `json:"certificate"`                  // /0/x/3: the device's certificate, DER
	ServerCertificate []byte `json:"server_certificate,omitempty"` // /0/x/4: the DM server's certificate, DER
	// SealedKey is the device's private key (/0/x/5, PKCS#8 DER) sealed with the credential
	// key. It is stored with the configuration and never read back by the API.
	SealedKey *credentials.Sealed `json:"sealed_key,omitempty"`
	// PrivateKey is the PKCS#8 key in the clear on its way to Admin.SetConfig, which seals it
	// and clears it; it is never stored.
	PrivateKey []byte `json:"-"`
}

// Public returns a copy of a without its key, sealed or not: what the API shows.
func (a *X509Account) Public() *X509Account {
	if a == nil {
		return nil
	}
	return &X509Account{Certificate: a.Certificate, ServerCertificate: a.ServerCertificate}
}

// ParseX509 checks a certificate account given in PEM (ErrInvalid): the device's certificate,
// its private key (PKCS#8, SEC 1 or PKCS#1), which must match the certificate, and optionally
// the DM server's certificate. The key comes out as PKCS#8 DER, as LwM2M writes it.
func ParseX509(certPEM, keyPEM, serverPEM []byte) (*X509Account, error) {
	cert, err := parseCertPEM(certPEM, "certificate")
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("%w: private key: no PEM block", ErrInvalid)
	}
	var key crypto.PrivateKey
	if key, err = x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(kb.Bytes); err != nil {
				return nil, fmt.Errorf("%w: private key: not a PKCS#8, EC or RSA key", ErrInvalid)
			}
		}
	}
	pub, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil, fmt.Errorf("%w: private key: unsupported type %T", ErrInvalid, key)
	}
	eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: the private key does not match the certificate", ErrInvalid)
	}
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("%w: private key: unsupported type %T", ErrInvalid, key)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrInvalid, err)
	}
	a := &X509Account{Certificate: cert.Raw, PrivateKey: p8}
	if len(serverPEM) > 0 {
		srv, err := parseCertPEM(serverPEM, "server certificate")
		if err != nil {
			return nil, err
		}
		a.ServerCertificate = srv.Raw
	}
	return a, nil
}

func parseCertPEM(b []byte, what string) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: %s: no PEM CERTIFICATE block", ErrInvalid, what)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	return c, nil
}
