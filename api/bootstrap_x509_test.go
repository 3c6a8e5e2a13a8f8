package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// TestBootstrapX509Config: a certificate account given in PEM is checked (the PEM parses, the
// key matches the certificate: 400 otherwise, and nothing is stored), stored with its key
// sealed, and read back without the key, sealed or not.
func TestBootstrapX509Config(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := bytes.Repeat([]byte{7}, credentials.ServerKeyLen)
	bsCreds, err := credentials.New(st.BootstrapCredentials(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dmCreds, err := credentials.New(st, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, Config{})
	env.api.WithBootstrap(bootstrap.NewAdmin(st, bsCreds, dmCreds), bsCreds)

	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := pki.Device("x509-a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.Device("x509-b")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Server()
	if err != nil {
		t.Fatal(err)
	}
	js := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	body := func(uri, cert, key, server string) string {
		return fmt.Sprintf(`{"server_uri":%s,"dm_x509":{"certificate":%s,"private_key":%s,"server_certificate":%s}}`,
			js(uri), js(cert), js(key), js(server))
	}
	const uri = "coaps://lwota:5684"
	cert, pkey, scert := string(dev.CertPEM), string(dev.KeyPEM), string(srv.CertPEM)

	for _, tc := range []struct{ name, path, body, want string }{
		{"certificate not PEM", "endpoint/x509-a", body(uri, "nope", pkey, scert), "certificate"},
		{"certificate garbage", "endpoint/x509-a", body(uri, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", pkey, scert), "certificate"},
		{"key not PEM", "endpoint/x509-a", body(uri, cert, "nope", scert), "private key"},
		{"key of another certificate", "endpoint/x509-a", body(uri, cert, string(other.KeyPEM), scert), "does not match"},
		{"server certificate not PEM", "endpoint/x509-a", body(uri, cert, pkey, "nope"), "server certificate"},
		{"plain coap", "endpoint/x509-a", body("coap://lwota:5683", cert, pkey, scert), "coaps"},
		{"batch scope", "prefix/x509-", body(uri, cert, pkey, scert), "one endpoint"},
		{"with psk generate", "endpoint/x509-a", `{"server_uri":"coaps://lwota:5684","psk":"generate","dm_x509":{"certificate":` + js(cert) + `,"private_key":` + js(pkey) + `}}`, "want x509"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := wantError(t, env.do(t, "PUT", "/api/v1/bootstrap/configs/"+tc.path, tc.body, "Content-Type", "application/json"), 400, codeInvalidRequest)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("message %q, want %q in it", msg, tc.want)
			}
			if cfgs, err := st.ListBootstrapConfigs(ctx); err != nil || len(cfgs) != 0 {
				t.Fatalf("refused, yet stored: %v %v", cfgs, err)
			}
		})
	}

	r := env.do(t, "PUT", "/api/v1/bootstrap/configs/endpoint/x509-a", body(uri, cert, pkey, scert), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	stored, err := st.BootstrapConfig(ctx, bootstrap.ScopeEndpoint, "x509-a")
	if err != nil || stored.PSK != bootstrap.PSKX509 || stored.X509 == nil || stored.X509.SealedKey == nil {
		t.Fatalf("stored %+v %v", stored, err)
	}
	if !bytes.Equal(stored.X509.Certificate, dev.TLS.Certificate[0]) || !bytes.Equal(stored.X509.ServerCertificate, srv.TLS.Certificate[0]) {
		t.Fatal("stored certificates are not the DER of the given PEM")
	}
	p8, err := dmCreds.OpenSecret(ctx, stored.X509.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.X509.SealedKey.SealedKey, p8) {
		t.Fatal("the private key is stored in the clear")
	}
	for _, path := range []string{"/api/v1/bootstrap/configs/endpoint/x509-a", "/api/v1/bootstrap/configs"} {
		for _, r := range []response{r, env.do(t, "GET", path, "")} {
			if r.status != 200 || bytes.Contains(r.body, []byte("sealed_key")) || !bytes.Contains(r.body, []byte(`"psk":"x509"`)) {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
		}
	}
}
