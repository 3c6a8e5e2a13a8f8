package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/storage/sqlstore"
)

// harness is an lwota core on loopback (CoAP and CoAPS), over SQLite, with credentials and
// the audit log wired as lwota serve wires them.
type harness struct {
	srv     *server.Server
	store   *sqlstore.Store
	creds   *credentials.Manager
	audit   *audit.Log
	metrics *prometheus.Registry
	bus     *events.Bus
}

func startHarness(t testing.TB, change func(*server.Config)) *harness {
	t.Helper()
	return startHarnessCreds(t, change, nil)
}

// startHarnessCreds is startHarness with the server's credentials wrap(the harness's Manager)
// when wrap is not nil.
func startHarnessCreds(t testing.TB, change func(*server.Config), wrap func(*credentials.Manager) server.Credentials) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, credentials.ServerKeyLen)
	_, _ = rand.Read(key)
	creds, err := credentials.New(st, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.CoAPAddr, cfg.CoAPSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AllowNoSec = true
	cfg.ReadDeviceInfo = false
	if change != nil {
		change(&cfg)
	}
	h := &harness{store: st, creds: creds, audit: audit.New(st), metrics: prometheus.NewRegistry(), bus: events.NewBus(256)}
	h.srv = server.New(cfg, st, lwm2m.NewModel(), h.bus, nil, h.metrics)
	if wrap != nil {
		h.srv.SetCredentials(wrap(creds))
	} else {
		h.srv.SetCredentials(creds)
	}
	h.srv.SetAudit(h.audit)
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		st.Close()
	})
	select {
	case <-h.srv.Ready():
	case err := <-done:
		t.Fatalf("server stopped: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("server not ready within a minute")
	}
	return h
}

// counter returns the value of the counter name with the given label values (nil: unlabelled).
func (h *harness) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// plainClient is a plain CoAP (NoSec) client on its own UDP port.
func plainClient(t *testing.T, addr net.Addr) *client.Conn {
	t.Helper()
	cc, err := udp.Dial(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// post sends a confirmable POST and returns the answer's code and payload.
func post(t *testing.T, cc *client.Conn, path string, format message.MediaType, body []byte, query ...string) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := make(message.Options, 0, len(query))
	for _, q := range query {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	resp, err := cc.Post(ctx, path, format, bytes.NewReader(body), opts...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	payload, _ := resp.ReadBody()
	return resp.Code(), string(payload)
}

// del sends a confirmable DELETE and returns the answer's code.
func del(t *testing.T, cc *client.Conn, path string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cc.Delete(ctx, path)
	if err != nil {
		t.Fatalf("DELETE %s: %v", path, err)
	}
	return resp.Code()
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditEntries lists the audit entries of action.
func (h *harness) auditEntries(t *testing.T, action string) []*audit.Entry {
	t.Helper()
	es, err := h.audit.List(context.Background(), audit.Filter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return es
}
