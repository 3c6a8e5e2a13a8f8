package main

import (
	"context"
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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// testPKI is a CA made for one test, writing PEM files into dir.
type testPKI struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	p := &testPKI{dir: t.TempDir(), cert: cert, key: key, pool: pool}
	p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs an ECDSA P-256 certificate named cn: a server's (127.0.0.1 and localhost) or a
// device's. It writes cn.pem and cn.key and returns the pair.
func (p *testPKI) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, cn+".pem", "CERTIFICATE", der)
	p.write(t, cn+".key", "EC PRIVATE KEY", keyDER)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) file(name string) string { return filepath.Join(p.dir, name) }

// coapOption appends one CoAP option (RFC 7252 §3.1) after the option numbered prev.
func coapOption(b []byte, prev, num int, val []byte) []byte {
	nibble := func(v int) (int, []byte) {
		switch {
		case v < 13:
			return v, nil
		case v < 269:
			return 13, []byte{byte(v - 13)}
		}
		return 14, []byte{byte((v - 269) >> 8), byte(v - 269)}
	}
	d, dx := nibble(num - prev)
	l, lx := nibble(len(val))
	b = append(b, byte(d<<4|l))
	b = append(append(append(b, dx...), lx...), val...)
	return b
}

// coapRegister builds a confirmable LwM2M Register of endpoint (POST /rd, link format).
func coapRegister(endpoint string, mid uint16) []byte {
	b := []byte{0x44, 0x02, byte(mid >> 8), byte(mid), 1, 2, 3, 4} // CON, POST, 4-byte token
	b = coapOption(b, 0, 11, []byte("rd"))
	b = coapOption(b, 11, 12, []byte{40}) // application/link-format
	prev := 12
	for _, q := range []string{"ep=" + endpoint, "lt=60", "lwm2m=1.1"} {
		b = coapOption(b, prev, 15, []byte(q))
		prev = 15
	}
	return append(append(b, 0xff), "</1/0>,</3/0>"...)
}

// pionRegister handshakes with cert and registers as endpoint; it returns the response code
// ("2.01") or the handshake error.
func pionRegister(t *testing.T, ts *testService, cert tls.Certificate, roots *x509.CertPool, endpoint string) (string, error) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dtls.ClientWithOptions(pc, ts.svc.core.CoAPSAddr(),
		dtls.WithCertificates(cert), dtls.WithRootCAs(roots), dtls.WithServerName("localhost"),
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8))
	if err != nil {
		pc.Close()
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		return "", err
	}
	if _, err := c.Write(coapRegister(endpoint, 0x5150)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil || n < 4 {
			t.Fatalf("read the answer: %d bytes, %v", n, err)
		}
		// lwota may ask the new device something (its /3/0 read) before the answer arrives:
		// the answer is the ACK carrying the Register's message id.
		if buf[0]>>4&3 == 2 && buf[2] == 0x51 && buf[3] == 0x50 {
			return fmt.Sprintf("%d.%02d", buf[1]>>5, buf[1]&31), nil
		}
	}
}

// startX509Service runs lwota with device certificates of pki and plain CoAP off.
func startX509Service(t *testing.T, pki *testPKI, extra ...string) *testService {
	t.Helper()
	pki.issue(t, "lwota-server", true)
	args := append([]string{"--allow-nosec=false", "--dtls-ca", pki.file("ca.pem"),
		"--dtls-cert", pki.file("lwota-server.pem"), "--dtls-key", pki.file("lwota-server.key")}, extra...)
	return startService(t, t.TempDir(), "", args...)
}

// TestX509Registration: a device with a certificate of the configured CA registers as the
// endpoint its certificate names (2.01) and as no other (4.03); a certificate of another CA fails
// the handshake. The device's identity is "x509:" and its certificate's name.
func TestX509Registration(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	pki, rogue := newTestPKI(t, "lwota devices CA"), newTestPKI(t, "rogue CA")
	ts := startX509Service(t, pki)
	dev := pki.issue(t, "x509-dev-1", false)

	code, err := pionRegister(t, ts, dev, pki.pool, "x509-dev-1")
	if err != nil || code != "2.01" {
		t.Fatalf("register as its own name: %s, %v", code, err)
	}
	var d deviceJSON
	if status := ts.apiCall(t, "GET", "/api/v1/devices/x509-dev-1", nil, &d); status != 200 || !d.Online {
		t.Fatalf("x509-dev-1: status %d, %+v", status, d)
	}
	var raw map[string]any
	ts.apiCall(t, "GET", "/api/v1/devices/x509-dev-1", nil, &raw)
	if raw["identity"] != "x509:x509-dev-1" {
		t.Fatalf("identity %v, want x509:x509-dev-1", raw["identity"])
	}

	if code, err := pionRegister(t, ts, dev, pki.pool, "x509-dev-2"); err != nil || code != "4.03" {
		t.Fatalf("register as another endpoint: %s, %v; want 4.03", code, err)
	}
	if code, err := pionRegister(t, ts, rogue.issue(t, "x509-dev-1", false), pki.pool, "x509-dev-1"); err == nil {
		t.Fatalf("a certificate of another CA handshook and got %s", code)
	}
	if n := deviceCount(t, ts); n != 1 {
		t.Fatalf("%d devices, want 1", n)
	}
}

// TestX509LibcoapRegistration: libcoap's OpenSSL client with a device certificate (-c, -j) that
// checks lwota's certificate against the CA (-C) registers as its certificate's name.
func TestX509LibcoapRegistration(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	client := sysdeps.Require(t, "coap-client-openssl")
	pki := newTestPKI(t, "lwota devices CA")
	ts := startX509Service(t, pki)
	pki.issue(t, "libcoap-dev-1", false)
	register := func(endpoint string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, _ := exec.CommandContext(ctx, client, "-m", "post", "-t", "40", "-B", "5",
			"-c", pki.file("libcoap-dev-1.pem"), "-j", pki.file("libcoap-dev-1.key"), "-C", pki.file("ca.pem"),
			"-e", "</1/0>,</3/0>",
			fmt.Sprintf("coaps://%s/rd?ep=%s&lt=60&lwm2m=1.1", ts.svc.core.CoAPSAddr(), endpoint)).CombinedOutput()
		t.Logf("coap-client-openssl -c libcoap-dev-1.pem, ep=%s: %q", endpoint, out)
		return string(out)
	}
	if out := register("someone-else"); !strings.Contains(out, "4.03") {
		t.Fatalf("another endpoint: output %q does not show 4.03", out)
	}
	register("libcoap-dev-1")
	var d deviceJSON
	if status := ts.apiCall(t, "GET", "/api/v1/devices/libcoap-dev-1", nil, &d); status != 200 || !d.Online {
		t.Fatalf("libcoap-dev-1 after registering with its certificate: status %d, %+v", status, d)
	}
}

// TestX509Flags: half a certificate configuration is refused at start.
func TestX509Flags(t *testing.T) {
	for _, args := range [][]string{
		{"--dtls-ca", "ca.pem"},
		{"--dtls-ca", "ca.pem", "--dtls-cert", "c.pem", "--dtls-key", "c.key", "--coaps-addr", ""},
		{"--http-tls-cert", "c.pem"},
	} {
		if _, err := parseServeFlags(args, &strings.Builder{}, func(string) string { return "" }); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
