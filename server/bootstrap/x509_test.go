package bootstrap_test

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestBootstrapX509Account: a certificate account is written as Security Mode 2 with the
// device's certificate in /0/x/3, the server's in /0/x/4 and the private key (PKCS#8, opened
// from its seal) in /0/x/5, over a real bootstrap session; the client decodes the TLV write.
func TestBootstrapX509Account(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := pki.Device("x509-dev")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Server()
	if err != nil {
		t.Fatal(err)
	}
	acct, err := bootstrap.ParseX509(dev.CertPEM, dev.KeyPEM, srv.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	p8 := acct.PrivateKey
	if acct.SealedKey, err = h.dm.SealSecret("x509-dev", bootstrap.SecretLabelX509Key, p8); err != nil {
		t.Fatal(err)
	}
	acct.PrivateKey = nil
	if err := h.bs.Put(ctx, "x509-dev", "bs-x509-dev", []byte("bootstrap-secret")); err != nil {
		t.Fatal(err)
	}
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "x509-dev", ServerURI: "coaps://127.0.0.1:5684", X509: acct})

	bc := lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-x509-dev", PSK: []byte("bootstrap-secret")}
	p, _, err := lwm2mtest.Bootstrap(ctx, "x509-dev", bc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.SecurityMode != bootstrap.SecurityCertificate || p.PSKIdentity != "" || len(p.PSK) != 0 {
		t.Fatalf("provisioned mode %d identity %q psk %x", p.SecurityMode, p.PSKIdentity, p.PSK)
	}
	if !bytes.Equal(p.Certificate, dev.TLS.Certificate[0]) || !bytes.Equal(p.ServerCertificate, srv.TLS.Certificate[0]) || !bytes.Equal(p.PrivateKey, p8) {
		t.Fatal("/0/x/3, /0/x/4 or /0/x/5 is not the account's certificate, server certificate or key")
	}
	if _, err := x509.ParsePKCS8PrivateKey(p.PrivateKey); err != nil {
		t.Fatalf("/0/x/5 is not PKCS#8: %v", err)
	}
	if sess := h.lastSession(t, "x509-dev"); sess.Outcome != bootstrap.OutcomeSuccess || sess.Rotated {
		t.Fatalf("session %+v", sess)
	}
}

// TestBootstrapX509Unsealable: an account whose sealed key does not open (moved to another
// endpoint's configuration) is refused at the Bootstrap-Request: the device keeps its accounts
// (no Delete, no Write).
func TestBootstrapX509Unsealable(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := pki.Device("x509-dev")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := bootstrap.ParseX509(dev.CertPEM, dev.KeyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acct.SealedKey, err = h.dm.SealSecret("someone-else", bootstrap.SecretLabelX509Key, acct.PrivateKey); err != nil {
		t.Fatal(err)
	}
	acct.SealedKey.Endpoint = "x509-dev" // moved: the additional data no longer matches
	acct.PrivateKey = nil
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "x509-dev", ServerURI: "coaps://127.0.0.1:5684", X509: acct})
	bc := lwm2mtest.BootstrapConfig{URI: "coap://" + h.udp, Timeout: 5 * time.Second}
	if _, ops, err := lwm2mtest.Bootstrap(ctx, "x509-dev", bc, nil, nil); err == nil {
		t.Fatalf("bootstrap succeeded: %s", opString(ops))
	}
	sess := h.lastSession(t, "x509-dev")
	if sess.Outcome != bootstrap.OutcomeFailure || !strings.Contains(sess.Reason, "cannot be opened") {
		t.Fatalf("session %+v", sess)
	}
	if ops := stepOps(sess); ops != "request refused" {
		t.Fatalf("steps %s: the device was touched despite the unopenable key", ops)
	}
}

func stepOps(s *bootstrap.Session) string {
	var ops []string
	for _, st := range s.Steps {
		ops = append(ops, st.Op)
	}
	return strings.Join(ops, " ")
}
