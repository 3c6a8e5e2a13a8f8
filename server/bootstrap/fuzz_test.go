package bootstrap_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// FuzzBootstrapAccounts feeds Bootstrap-Discover answers to the parser that finds the bootstrap
// accounts: it must never panic, and every account it returns is a Security instance the
// payload named without an ssid.
func FuzzBootstrapAccounts(f *testing.F) {
	for _, s := range []string{
		`</>;lwm2m=1.1,</0/0>;uri="coap://bs.example.com",</0/1>;ssid=101;uri="coaps://dm.example.com",</1/0>;ssid=101,</3/0>`,
		`</0/0>,</0/5>;ssid=1`,
		`lwm2m="1.2",</0/65534>;uri="x"`,
		`</0>,</0/0/1>,<//0/1>`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := bootstrap.BootstrapAccounts(b)
		if err != nil && len(ids) > 0 {
			t.Fatalf("accounts %v with error %v", ids, err)
		}
	})
}

// TestBootstrapAccounts: the Security instances without ssid are the bootstrap accounts.
func TestBootstrapAccounts(t *testing.T) {
	tests := []struct {
		payload string
		want    []uint16
	}{
		{`</>;lwm2m=1.1,</0/0>;uri="coap://bs",</0/1>;ssid=101;uri="coaps://dm",</1/0>;ssid=101`, []uint16{0}},
		{`</0/3>;uri="coap://bs",</0/0>;ssid=1`, []uint16{3}},
		{`</0/1>;ssid=1,</1/0>`, nil},
	}
	for _, tt := range tests {
		got, err := bootstrap.BootstrapAccounts([]byte(tt.payload))
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("%s: %v, %v; want %v", tt.payload, got, err, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("%s: %v, want %v", tt.payload, got, tt.want)
			}
		}
	}
}

// FuzzParseX509 feeds PEM certificate accounts to ParseX509: it must never panic, and an
// account it accepts has a certificate whose key the returned PKCS#8 key matches.
func FuzzParseX509(f *testing.F) {
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		f.Fatal(err)
	}
	dev, err := pki.Device("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(dev.CertPEM, dev.KeyPEM, pki.CAPEM)
	f.Add(dev.CertPEM, dev.KeyPEM, []byte(nil))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), dev.KeyPEM, []byte(nil))
	f.Add(dev.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte("x"))
	f.Fuzz(func(t *testing.T, cert, key, server []byte) {
		a, err := bootstrap.ParseX509(cert, key, server)
		if err != nil {
			if !errors.Is(err, bootstrap.ErrInvalid) || a != nil {
				t.Fatalf("account %v with error %v", a, err)
			}
			return
		}
		c, err := x509.ParseCertificate(a.Certificate)
		if err != nil {
			t.Fatalf("accepted certificate does not parse: %v", err)
		}
		k, err := x509.ParsePKCS8PrivateKey(a.PrivateKey)
		if err != nil {
			t.Fatalf("accepted key is not PKCS#8: %v", err)
		}
		if !k.(interface{ Public() crypto.PublicKey }).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
			t.Fatal("accepted a key that does not match the certificate")
		}
	})
}
