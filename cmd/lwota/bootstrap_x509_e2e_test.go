package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestBootstrapX509EndToEnd: a device with only a bootstrap PSK bootstraps over DTLS PSK, is
// given a certificate account (configured with the CLI from PEM files: its certificate, its
// private key, lwota's certificate), and registers with lwota over DTLS with that certificate,
// lwota trusting the CA that signed it. The private key is never read back.
func TestBootstrapX509EndToEnd(t *testing.T) {
	pki := newTestPKI(t, "lwota devices CA")
	ts := startX509Service(t, pki, "--bootstraps-addr", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ep = "boot-x509-1"
	dev := pki.issue(t, ep, false)
	bsKey := bytes.Repeat([]byte{0x3c}, 16)
	out, errOut, err := cli(t, "bootstrap", "--server", ts.base, "--token", testAdminToken, "set", ep,
		"--server-uri", "coaps://"+ts.svc.core.CoAPSAddr().String(), "--lifetime", "120",
		"--certificate", pki.file(ep+".pem"), "--private-key", pki.file(ep+".key"), "--server-certificate", pki.file("lwota-server.pem"),
		"--bootstrap-psk-identity", "bs-"+ep, "--bootstrap-psk-key", hex.EncodeToString(bsKey))
	if err != nil {
		t.Fatalf("bootstrap set: %v\n%s%s", err, out, errOut)
	}
	var raw map[string]any
	if code := ts.apiCall(t, "GET", "/api/v1/bootstrap/configs/endpoint/"+ep, nil, &raw); code != 200 || raw["psk"] != "x509" {
		t.Fatalf("config: %d %v", code, raw)
	}
	if x, _ := raw["x509"].(map[string]any); x == nil || x["certificate"] == nil || x["sealed_key"] != nil || x["private_key"] != nil {
		t.Fatalf("config's x509 %v: want the certificate and no key", raw["x509"])
	}

	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Endpoint = ep
	cfg.Protocols = []int{lwm2mtest.ProtoCoAPS}
	bd := lwm2mtest.NewBootstrapDevice(cfg, lwm2mtest.BootstrapConfig{
		URI: "coaps://" + ts.svc.boot.SecureAddr().String(), PSKIdentity: "bs-" + ep, PSK: bsKey, Timeout: 30 * time.Second,
	}, nil)
	defer bd.Close()
	if err := bd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := bd.Provisioned()
	if p.SecurityMode != 2 || !bytes.Equal(p.Certificate, dev.Certificate[0]) || len(p.PrivateKey) == 0 || len(p.ServerCertificate) == 0 {
		t.Fatalf("provisioned mode %d, certificate %d bytes, key %d bytes, server certificate %d bytes",
			p.SecurityMode, len(p.Certificate), len(p.PrivateKey), len(p.ServerCertificate))
	}
	r, err := ts.svc.core.Device(ctx, ep)
	if err != nil || !strings.HasPrefix(r.Addr.String(), "dtls://") || r.Lifetime != 120 {
		t.Fatalf("registration %+v, %v", r, err)
	}
	ts.apiCall(t, "GET", "/api/v1/devices/"+ep, nil, &raw)
	if raw["identity"] != "x509:"+ep {
		t.Fatalf("identity %v, want x509:%s", raw["identity"], ep)
	}
	if ss := ts.bootstrapSessions(t, ep); len(ss) != 1 || ss[0].Outcome != "success" {
		t.Fatalf("sessions %+v", ss)
	}
}
