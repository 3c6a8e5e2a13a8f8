package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue signs an ECDSA P-256 leaf for a device (client) or for lwota (server: 127.0.0.1, localhost).
func (ca *testCA) issue(t testing.TB, cn string, server bool, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// dialX509 handshakes a pion client presenting cert with one suite, checking lwota's certificate.
func dialX509(t testing.TB, to Addr, cert tls.Certificate, roots *x509.CertPool, suite CipherSuite) (*dtls.Conn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	c, err := dtls.ClientWithOptions(conn, net.UDPAddrFromAddrPort(to.AddrPort),
		dtls.WithCertificates(cert), dtls.WithRootCAs(roots), dtls.WithServerName("localhost"),
		dtls.WithCipherSuites(dtls.CipherSuiteID(suite)),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TestDTLSX509: devices authenticate with certificates of the configured CA beside PSK devices;
// their identity is "x509:" and the certificate's name; an untrusted certificate, one without a
// name, and a PSK identity posing as a certificate name fail the handshake.
func TestDTLSX509(t *testing.T) {
	ca, rogue := newTestCA(t, "lwota test CA"), newTestCA(t, "rogue CA")
	psk := pskMap{"dev1": "secretkey123", "x509:dev-7": "secretkey123"}
	var calls atomic.Int64
	got := make(chan Peer, 1)
	te, link := startDTLS(t, registerHandler(&calls, got), DTLSConfig{PSK: psk, HandshakeTimeout: 2 * time.Second,
		X509: &X509Config{Certificate: ca.issue(t, "lwota", true), ClientCAs: ca.pool}})

	register := func(t *testing.T, c *dtls.Conn) Peer {
		t.Helper()
		if _, err := c.Write(datagram(t, typeCON, 0x77, req(POST, "/rd", 5))); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
			t.Fatalf("answer %+v", f)
		}
		return <-got
	}
	for _, tc := range []struct {
		name     string
		cert     tls.Certificate
		suite    CipherSuite
		identity string // empty: the handshake must fail
	}{
		{"ccm8", ca.issue(t, "dev-7", false), TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, "x509:dev-7"},
		{"gcm", ca.issue(t, "urn:imei:490154203237518", false), TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "x509:urn:imei:490154203237518"},
		{"untrusted CA", rogue.issue(t, "dev-7", false), TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, ""},
		{"no common name", ca.issue(t, "", false, "urn:dev:no-cn"), TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, ""},
		{"server certificate as a device's", ca.issue(t, "dev-8", true), TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialX509(t, te.addr, tc.cert, ca.pool, tc.suite)
			if tc.identity == "" {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			if st, _ := c.ConnectionState(); CipherSuite(st.CipherSuiteID) != tc.suite {
				t.Fatalf("suite %#x, want %#x", st.CipherSuiteID, tc.suite)
			}
			if p := register(t, c); p.Identity != tc.identity || p.Addr.Network != DTLS {
				t.Fatalf("peer %+v, want identity %q", p, tc.identity)
			}
		})
	}
	t.Run("psk beside certificates", func(t *testing.T) {
		c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		if p := register(t, c); p.Identity != "dev1" {
			t.Fatalf("peer %+v", p)
		}
	})
	t.Run("psk identity with the certificate prefix", func(t *testing.T) {
		if c, err := dialDTLS(t, te.addr, "x509:dev-7", "secretkey123", nil); err == nil {
			c.Close()
			t.Fatal("a PSK identity posing as a certificate name handshook")
		}
	})
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
	eventually(t, "sessions closed", func() bool { return link.sessions() == 0 })
}

// TestDTLSX509SubjectAltName: with CertNameSAN the first URI SAN names the device.
func TestDTLSX509SubjectAltName(t *testing.T) {
	ca := newTestCA(t, "lwota test CA")
	got := make(chan Peer, 1)
	te, _ := startDTLS(t, registerHandler(new(atomic.Int64), got), DTLSConfig{HandshakeTimeout: 2 * time.Second,
		X509: &X509Config{Certificate: ca.issue(t, "lwota", true), ClientCAs: ca.pool, Name: CertNameSAN}})
	c, err := dialX509(t, te.addr, ca.issue(t, "Acme sensor", false, "urn:dev:ops:32473-sensor-42"), ca.pool, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 1, req(POST, "/rd", 1))); err != nil {
		t.Fatal(err)
	}
	readFrame(t, c)
	if p := <-got; p.Identity != "x509:urn:dev:ops:32473-sensor-42" {
		t.Fatalf("identity %q", p.Identity)
	}
	if c2, err := dialX509(t, te.addr, ca.issue(t, "cn-only", false), ca.pool, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8); err == nil {
		c2.Close()
		t.Fatal("a certificate without a SAN handshook in SAN mode")
	}
}

func TestDTLSX509Config(t *testing.T) {
	ca := newTestCA(t, "lwota test CA")
	server := ca.issue(t, "lwota", true)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		dc   DTLSConfig
		want string
	}{
		{"no CAs", DTLSConfig{X509: &X509Config{Certificate: server}}, "no client CAs"},
		{"no certificate", DTLSConfig{X509: &X509Config{ClientCAs: ca.pool}}, "no server certificate"},
		{"ed25519 key", DTLSConfig{X509: &X509Config{Certificate: tls.Certificate{Certificate: server.Certificate, PrivateKey: edKey}, ClientCAs: ca.pool}}, "want ECDSA"},
		{"bad name field", DTLSConfig{X509: &X509Config{Certificate: server, ClientCAs: ca.pool, Name: "serial"}}, `name "serial"`},
		{"psk suites only", DTLSConfig{CipherSuites: []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8}, X509: &X509Config{Certificate: server, ClientCAs: ca.pool}}, "no ECDHE_ECDSA suite"},
		{"ok", DTLSConfig{X509: &X509Config{Certificate: server, ClientCAs: ca.pool}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.dc.PSK = testKeys
			d, err := tc.dc.withDefaults()
			if tc.want == "" {
				if err != nil || len(d.CipherSuites) != 4 || d.X509.Name != CertNameCN {
					t.Fatalf("withDefaults: %v, suites %v", err, d.CipherSuites)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadX509Config(t *testing.T) {
	ca := newTestCA(t, "lwota test CA")
	server := ca.issue(t, "lwota", true)
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalECPrivateKey(server.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	caFile := write("ca.pem", "CERTIFICATE", ca.cert.Raw)
	certFile := write("server.pem", "CERTIFICATE", server.Certificate[0])
	keyFile := write("server.key", "EC PRIVATE KEY", keyDER)
	c, err := LoadX509Config(caFile, certFile, keyFile, "")
	if err != nil || c.Name != CertNameCN || len(c.Certificate.Certificate) != 1 {
		t.Fatalf("LoadX509Config: %+v, %v", c, err)
	}
	if _, err := LoadX509Config(keyFile, certFile, keyFile, ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as the CA file: %v", err)
	}
	if _, err := LoadX509Config(caFile, certFile, caFile, ""); err == nil {
		t.Fatal("a certificate as the key file loaded")
	}
}

// TestDTLSX509CertificateSuitesOnly: a server offering only the ECDHE_ECDSA suites (no PSK
// suite) lets certificate devices handshake; pion refuses a PSK callback without a PSK suite,
// which once failed every such handshake.
func TestDTLSX509CertificateSuitesOnly(t *testing.T) {
	ca := newTestCA(t, "lwota test CA")
	var calls atomic.Int64
	got := make(chan Peer, 1)
	te, _ := startDTLS(t, registerHandler(&calls, got), DTLSConfig{HandshakeTimeout: 2 * time.Second,
		CipherSuites: []CipherSuite{TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8},
		X509:         &X509Config{Certificate: ca.issue(t, "lwota", true), ClientCAs: ca.pool}})
	c, err := dialX509(t, te.addr, ca.issue(t, "dev-9", false), ca.pool, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 0x78, req(POST, "/rd", 5))); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.msg == nil || f.msg.Code != Created {
		t.Fatalf("answer %+v", f)
	}
	if p := <-got; p.Identity != "x509:dev-9" {
		t.Fatalf("peer %+v", p)
	}
}
