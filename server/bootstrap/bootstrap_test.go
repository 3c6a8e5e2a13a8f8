package bootstrap_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// harness is a Bootstrap Server on loopback (NoSec and DTLS) over a real SQLite store.
type harness struct {
	store *sqlstore.Store
	srv   *bootstrap.Server
	bs    *credentials.Manager // bootstrap PSKs
	dm    *credentials.Manager // DM PSKs
	udp   string
	dtls  string
}

func newHarness(t testing.TB, mod func(*bootstrap.ServerConfig)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, credentials.ServerKeyLen)
	bs, err := credentials.New(st.BootstrapCredentials(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dm, err := credentials.New(st, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bootstrap.DefaultServerConfig()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.AllowNoSec = "127.0.0.1:0", "127.0.0.1:0", true
	cfg.RequestTimeout, cfg.SessionTimeout = 5*time.Second, 20*time.Second
	cfg.DTLS.HandshakeRate = -1
	cfg.Transport.SourceRate = -1
	if mod != nil {
		mod(&cfg)
	}
	srv := bootstrap.New(cfg, st, bs, dm, nil, nil, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		st.Close()
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	h := &harness{store: st, srv: srv, bs: bs, dm: dm}
	if a := srv.Addr(); a != nil {
		h.udp = a.String()
	}
	if a := srv.SecureAddr(); a != nil {
		h.dtls = a.String()
	}
	return h
}

func (h *harness) config(t *testing.T, c bootstrap.Config) {
	t.Helper()
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	c.UpdatedAt = time.Now()
	if err := h.store.SaveBootstrapConfig(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
}

// lastSession waits for endpoint's newest session to end and returns it.
func (h *harness) lastSession(t *testing.T, endpoint string) *bootstrap.Session {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ss, err := h.store.BootstrapSessions(context.Background(), endpoint, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 1 && ss[0].Outcome != bootstrap.OutcomeRunning {
			return ss[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended session of %s: %+v", endpoint, ss)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestBootstrapDTLSGeneratesDMKey: a device with only a bootstrap PSK is given a fresh DM PSK,
// which lwota stores for the DM server with the session; a second bootstrap rotates it.
func TestBootstrapDTLSGeneratesDMKey(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	if err := h.bs.Put(ctx, "dev-1", "bs-dev-1", []byte("bootstrap-secret")); err != nil {
		t.Fatal(err)
	}
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "dev-1", ServerURI: "coaps://127.0.0.1:5684", PSK: bootstrap.PSKGenerate, Lifetime: 120, ReadBack: true})
	bc := lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-dev-1", PSK: []byte("bootstrap-secret")}
	p, ops, err := lwm2mtest.Bootstrap(ctx, "dev-1", bc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.ServerURI != "coaps://127.0.0.1:5684" || p.SecurityMode != 0 || p.PSKIdentity != "dev-1" || len(p.PSK) != bootstrap.DMKeyLen || p.Lifetime != 120*time.Second || p.SSID != 1 {
		t.Fatalf("provisioned %+v", p)
	}
	got := opString(ops)
	if want := "discover / | delete /0 | delete /1 | write /0/1 | write /1/0 | read /1/0 | finish /bs"; got != want {
		t.Fatalf("ops %s, want %s", got, want)
	}
	sess := h.lastSession(t, "dev-1")
	if sess.Outcome != bootstrap.OutcomeSuccess || !sess.Rotated || sess.DMIdentity != "dev-1" || sess.Identity != "bs-dev-1" {
		t.Fatalf("session %+v", sess)
	}
	c, err := h.dm.Get(ctx, "dev-1")
	if err != nil || !bytes.Equal(c.Key, p.PSK) || c.Identity != "dev-1" {
		t.Fatalf("stored DM credential %+v, %v; device got %x", c, err, p.PSK)
	}

	p2, _, err := lwm2mtest.Bootstrap(ctx, "dev-1", bc, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p2.PSK, p.PSK) {
		t.Fatal("re-bootstrap kept the DM key")
	}
	h.lastSessionAfter(t, "dev-1", sess.ID)
	c, err = h.dm.Get(ctx, "dev-1")
	if err != nil || !bytes.Equal(c.Key, p2.PSK) {
		t.Fatalf("stored DM credential after rotation %+v, %v", c, err)
	}
}

// lastSessionAfter waits for a newer ended session than id.
func (h *harness) lastSessionAfter(t *testing.T, endpoint, id string) *bootstrap.Session {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := h.lastSession(t, endpoint)
		if s.ID != id {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after %s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func opString(ops []lwm2mtest.BootstrapOp) string {
	var s []string
	for _, o := range ops {
		s = append(s, o.Op+" "+o.Path)
	}
	return strings.Join(s, " | ")
}

// TestBootstrapRefusals: each refusal ends with its reason stored and no DM credential written.
func TestBootstrapRefusals(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	// r-taken's minted identity would be "r-taken", which another device holds.
	if err := h.dm.Put(ctx, "other-device", "r-taken", []byte("k")); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"r-nokey", "r-404", "r-406", "r-wrongpsk", "r-taken"} {
		if err := h.bs.Put(ctx, ep, "bs-"+ep, []byte("bootstrap-secret")); err != nil {
			t.Fatal(err)
		}
	}
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "r-nokey", ServerURI: "coaps://127.0.0.1:5684", PSK: bootstrap.PSKStored})
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopePrefix, Name: "r-", ServerURI: "coaps://127.0.0.1:5684", PSK: bootstrap.PSKGenerate})
	tests := []struct {
		name, ep  string
		bc        lwm2mtest.BootstrapConfig
		clientErr bool // the client's own bootstrap fails (else the server refuses after 2.04)
		reason    string
	}{
		{name: "unknown endpoint", ep: "unknown-1", bc: lwm2mtest.BootstrapConfig{URI: "coap://" + h.udp}, clientErr: true,
			reason: `no bootstrap configuration for endpoint "unknown-1"`},
		{name: "security instance without key", ep: "r-nokey", bc: lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-r-nokey", PSK: []byte("bootstrap-secret")},
			clientErr: true, reason: "the Security instance has no key"},
		{name: "discover 4.04", ep: "r-404", bc: lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-r-404", PSK: []byte("bootstrap-secret"), DiscoverNotFound: true},
			clientErr: true, reason: "Bootstrap-Discover / answered 4.04"},
		{name: "finish 4.06", ep: "r-406", bc: lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-r-406", PSK: []byte("bootstrap-secret"), RefuseFinish: "no usable server account"},
			clientErr: true, reason: "Bootstrap-Finish /bs answered 4.06: no usable server account"},
		{name: "minted identity taken", ep: "r-taken", bc: lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-r-taken", PSK: []byte("bootstrap-secret")},
			clientErr: true, reason: `the DM PSK identity "r-taken" belongs to "other-device"`},
		{name: "wrong bootstrap psk", ep: "r-wrongpsk", bc: lwm2mtest.BootstrapConfig{URI: "coaps://" + h.dtls, PSKIdentity: "bs-r-wrongpsk", PSK: []byte("not-the-secret")},
			clientErr: true, reason: `DTLS handshake with bootstrap identity "bs-r-wrongpsk" failed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bc := tt.bc
			bc.Timeout = 5 * time.Second
			_, _, err := lwm2mtest.Bootstrap(ctx, tt.ep, bc, nil, nil)
			if (err != nil) != tt.clientErr {
				t.Fatalf("client: %v", err)
			}
			sess := h.lastSession(t, tt.ep)
			if sess.Outcome != bootstrap.OutcomeFailure || !strings.Contains(sess.Reason, tt.reason) {
				t.Fatalf("session outcome %s, reason %q; want failure with %q", sess.Outcome, sess.Reason, tt.reason)
			}
			if _, err := h.dm.Get(ctx, tt.ep); !errors.Is(err, credentials.ErrNotFound) {
				t.Fatalf("DM credential of %s after a refusal: %v", tt.ep, err)
			}
		})
	}
}

// TestBootstrapNoSecRefusedByDefault: without AllowNoSec a plain CoAP Bootstrap-Request is
// refused (4.03) with the reason stored.
func TestBootstrapNoSecRefusedByDefault(t *testing.T) {
	h := newHarness(t, func(c *bootstrap.ServerConfig) { c.AllowNoSec = false })
	ctx := ctxT(t)
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "plain-1", ServerURI: "coap://127.0.0.1:5683"})
	_, _, err := lwm2mtest.Bootstrap(ctx, "plain-1", lwm2mtest.BootstrapConfig{URI: "coap://" + h.udp, Timeout: 10 * time.Second}, nil, nil)
	var rej *lwm2mtest.RejectedError
	if !errors.As(err, &rej) || !strings.HasPrefix(rej.Code, "4.03") {
		t.Fatalf("err %v, want 4.03", err)
	}
	if s := h.lastSession(t, "plain-1"); !strings.Contains(s.Reason, "NoSec bootstrap") {
		t.Fatalf("reason %q", s.Reason)
	}
}

// TestBootstrapNoSecConfig: a coap:// server URI without a key gives the device NoSec, over a
// NoSec bootstrap; a label's configuration applies to a device with that label.
func TestBootstrapNoSecConfig(t *testing.T) {
	h := newHarness(t, nil)
	ctx := ctxT(t)
	if err := h.store.SetLabels(ctx, "lab-1", map[string]string{"batch": "b7"}); err != nil {
		t.Fatal(err)
	}
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeLabel, Name: "batch=b7", ServerURI: "coap://127.0.0.1:5683", Binding: "UQ", Lifetime: 600})
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopePrefix, Name: "lab", ServerURI: "coap://127.0.0.1:9999"})
	p, _, err := lwm2mtest.Bootstrap(ctx, "lab-1", lwm2mtest.BootstrapConfig{URI: "coap://" + h.udp, PreferredFormat: 112}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.SecurityMode != bootstrap.SecurityNoSec || p.ServerURI != "coap://127.0.0.1:5683" || p.Binding != "UQ" || p.Lifetime != 600*time.Second || len(p.PSK) != 0 {
		t.Fatalf("provisioned %+v", p)
	}
	if s := h.lastSession(t, "lab-1"); s.Outcome != bootstrap.OutcomeSuccess || s.Config != "label:batch=b7" {
		t.Fatalf("session %+v", s)
	}
}
