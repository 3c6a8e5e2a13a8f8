package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

type bootstrapSessionJSON struct {
	ID         string `json:"id"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	DMIdentity string `json:"dm_identity"`
	Rotated    bool   `json:"rotated"`
	Steps      []struct {
		Op   string `json:"op"`
		Path string `json:"path"`
		Code string `json:"code"`
	} `json:"steps"`
}

func (ts *testService) bootstrapSessions(t *testing.T, ep string) []bootstrapSessionJSON {
	t.Helper()
	var l struct {
		Sessions []bootstrapSessionJSON `json:"sessions"`
	}
	if code := ts.apiCall(t, "GET", "/api/v1/bootstrap/devices/"+ep+"/sessions", nil, &l); code != 200 {
		t.Fatalf("sessions of %s: %d", ep, code)
	}
	return l.Sessions
}

// TestBootstrapEndToEnd is the acceptance: a simulated device with only bootstrap
// credentials bootstraps over DTLS PSK (configured with the CLI), registers with lwota over DTLS
// with the credential it was given, and is updated by a campaign; a re-bootstrap triggered
// through the API rotates its DM PSK, it registers again with the new one, and the old one is
// refused afterwards.
func TestBootstrapEndToEnd(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false", "--bootstraps-addr", "127.0.0.1:0",
		"--allow-unsigned", "--update-poll", "500ms", "--campaign-tick", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ep = "boot-e2e-1"
	bsKey := bytes.Repeat([]byte{0x5a}, 16)
	out, errOut, err := cli(t, "bootstrap", "--server", ts.base, "--token", testAdminToken, "set", ep,
		"--server-uri", "coaps://"+ts.svc.core.CoAPSAddr().String(), "--lifetime", "120", "--generate-psk",
		"--bootstrap-psk-identity", "bs-"+ep, "--bootstrap-psk-key", hex.EncodeToString(bsKey))
	if err != nil {
		t.Fatalf("bootstrap set: %v\n%s%s", err, out, errOut)
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
	first := bd.Provisioned()
	if first.SecurityMode != 0 || first.PSKIdentity != ep || len(first.PSK) != 16 || first.Lifetime != 120*time.Second {
		t.Fatalf("provisioned %+v", first)
	}
	// Registered over DTLS with the identity it was given.
	r, err := ts.svc.core.Device(ctx, ep)
	if err != nil || !strings.HasPrefix(r.Addr.String(), "dtls://") || r.Lifetime != 120 {
		t.Fatalf("registration %+v, %v", r, err)
	}
	// The wire sequence as the device saw it: Discover, Delete /0 and /1 (the bootstrap
	// account kept), Write /0/x and /1/0, Finish.
	ops := bd.Ops()
	var seq []string
	for _, o := range ops {
		seq = append(seq, o.Op+" "+o.Path)
	}
	if got, want := strings.Join(seq, ", "), "discover /, delete /0, delete /1, write /0/1, write /1/0, finish /bs"; got != want {
		t.Fatalf("bootstrap ops %s, want %s", got, want)
	}

	// Updated by a campaign.
	waitModels(t, ts, []*lwm2mtest.Device{bd.Device()})
	img := uploadImage(t, ts, "9.1.0", fwImage("9.1.0", 8<<10))
	var c campaignJSON
	if code := ts.apiCall(t, "POST", "/api/v1/campaigns", map[string]any{
		"name": "bootstrapped", "image_id": img, "selector": map[string]any{"query": `endpoint = "` + ep + `"`},
		"waves": []map[string]any{{"percent": 100}}, "start": true,
	}, &c); code != 201 || c.Progress.Total != 1 {
		t.Fatalf("campaign: %d %+v", code, c)
	}
	c = ts.waitCampaign(t, c.ID, 2*time.Minute, func(c campaignJSON) bool { return c.State != "running" })
	if c.State != "completed" || c.Progress.Counts.Succeeded != 1 {
		var m map[string]any
		ts.apiCall(t, "GET", "/api/v1/campaigns/"+c.ID+"/devices", nil, &m)
		t.Fatalf("campaign %s (%s) %+v: %v", c.State, c.Reason, c.Progress.Counts, m)
	}
	if v, _ := bd.Device().Value(lwm2m.NewPath(3, 0, 3)); v.Str != "9.1.0" {
		t.Fatalf("firmware %q after the campaign", v.Str)
	}

	// Re-bootstrap through the API: a new DM key, a new registration with it.
	var res map[string]any
	if code := ts.apiCall(t, "POST", "/api/v1/bootstrap/devices/"+ep+"/trigger", nil, &res); code != 200 || res["code"] != "2.04" {
		t.Fatalf("trigger: %d %v", code, res)
	}
	if err := bd.WaitGeneration(ctx, 2); err != nil {
		t.Fatal(err)
	}
	second := bd.Provisioned()
	if bytes.Equal(second.PSK, first.PSK) || second.PSKIdentity != ep {
		t.Fatalf("re-bootstrap gave %+v; first %x", second, first.PSK)
	}
	waitFor(t, "the device registered again", time.Minute, func() bool {
		r2, err := ts.svc.core.Device(ctx, ep)
		la, ok := bd.Device().LocalAddr().(*net.UDPAddr)
		return err == nil && ok && r2.Addr.Network == "dtls" && int(r2.Addr.AddrPort.Port()) == la.Port
	})
	// The old key is refused by the DM server now.
	oldCfg := fleetConfig(lwm2mtest.DeliveryPull)
	oldCfg.Endpoint, oldCfg.PSKIdentity, oldCfg.PSK, oldCfg.RequestTimeout = ep, first.PSKIdentity, first.PSK, 5*time.Second
	old := lwm2mtest.NewDevice(oldCfg, nil)
	defer old.Close()
	if err := old.Start(ctx, ts.svc.core.CoAPSAddr().String()); err == nil {
		t.Fatal("the old DM PSK still registers")
	}
	// Both sessions are in the device's history, each step stored.
	ss := ts.bootstrapSessions(t, ep)
	if len(ss) != 2 || ss[0].Outcome != "success" || ss[1].Outcome != "success" || !ss[0].Rotated || ss[0].DMIdentity != ep {
		t.Fatalf("sessions %+v", ss)
	}
	var steps []string
	for _, s := range ss[0].Steps {
		steps = append(steps, s.Op+" "+s.Path+" "+s.Code)
	}
	if got := strings.Join(steps, ", "); !strings.Contains(got, "delete /0 2.02, delete /1 2.02, write /0/1 2.04, write /1/0 2.04, finish /bs 2.04") {
		t.Fatalf("steps %s", got)
	}
	// Each step is audited, the device as the actor.
	for _, action := range []string{"bootstrap.request", "bootstrap.discover", "bootstrap.delete", "bootstrap.write", "bootstrap.finish", "bootstrap.success"} {
		var a struct {
			Entries []struct {
				Actor  string `json:"actor"`
				Target string `json:"target"`
			} `json:"entries"`
		}
		waitFor(t, "audit of "+action, 30*time.Second, func() bool {
			return ts.apiCall(t, "GET", "/api/v1/audit?limit=100&action="+action, nil, &a) == 200 && len(a.Entries) >= 2
		})
		if a.Entries[0].Actor != "device:"+ep || !strings.HasPrefix(a.Entries[0].Target, "bootstrap:") {
			t.Fatalf("audit of %s: %+v", action, a.Entries[0])
		}
	}
	if n := counter(t, ts, "lwota_bootstrap_sessions_total"); n < 2 {
		t.Fatalf("lwota_bootstrap_sessions_total %v", n)
	}
}

// TestSimBootstrapFleet: a production batch: one prefix configuration with generated DM keys,
// the batch's bootstrap PSKs imported in bulk (CSV through the CLI), and `lwota sim --bootstrap`
// devices that start from those only and register over DTLS.
func TestSimBootstrapFleet(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false", "--bootstraps-addr", "127.0.0.1:0")
	key := hex.EncodeToString(bytes.Repeat([]byte{0x42}, 16))
	csv := "endpoint,identity,key\n"
	for i := range 3 {
		ep := fmt.Sprintf("batch7-%06d", i)
		csv += ep + ",bs-" + ep + "," + key + "\n"
	}
	file := filepath.Join(t.TempDir(), "bootstrap.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"bootstrap", "--server", ts.base, "--token", testAdminToken}
	if out, errOut, err := cli(t, append(base, "psk", "import", file)...); err != nil || !strings.Contains(out, `"created":3`) {
		t.Fatalf("psk import: %v %s %s", err, out, errOut)
	}
	if _, errOut, err := cli(t, append(base, "set", "--scope", "prefix", "batch7-", "--server-uri", "coaps://"+ts.svc.core.CoAPSAddr().String(), "--generate-psk")...); err != nil {
		t.Fatalf("set: %v %s", err, errOut)
	}
	out, errOut, err := cli(t, "sim", "--bootstrap", "coaps://"+ts.svc.boot.SecureAddr().String(), "--bootstrap-psk-identity", "bs-{ep}",
		"--bootstrap-psk-key", key, "--count", "3", "--prefix", "batch7-", "--exit-after-register")
	if err != nil || !strings.Contains(out, "bootstrapped and registered 3 devices") {
		t.Fatalf("sim: %v\n%s\n%s", err, out, errOut)
	}
	for i := range 3 {
		ep := fmt.Sprintf("batch7-%06d", i)
		ss := ts.bootstrapSessions(t, ep)
		if len(ss) != 1 || ss[0].Outcome != "success" || ss[0].DMIdentity != ep {
			t.Fatalf("%s sessions %+v", ep, ss)
		}
	}
	// Keys are never read back: the configuration carries none.
	out, _, err = cli(t, append(base, "get", "--scope", "prefix", "batch7-")...)
	if err != nil || strings.Contains(out, key) || !strings.Contains(out, `"psk": "generate"`) {
		t.Fatalf("get: %v %s", err, out)
	}
}

// TestConsoleBootstrapHistory: the device page shows the device's bootstrap sessions: a refused
// one with its reason, then the one that worked, each step with the device's answer.
func TestConsoleBootstrapHistory(t *testing.T) {
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false", "--bootstraps-addr", "127.0.0.1:0")
	const ep = "boot-console-1"
	bsKey := bytes.Repeat([]byte{0x33}, 16)
	if _, errOut, err := cli(t, "bootstrap", "--server", ts.base, "--token", testAdminToken, "set", ep,
		"--server-uri", "coaps://"+ts.svc.core.CoAPSAddr().String(), "--generate-psk",
		"--bootstrap-psk-identity", "bs-"+ep, "--bootstrap-psk-key", hex.EncodeToString(bsKey)); err != nil {
		t.Fatalf("bootstrap set: %v %s", err, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bc := lwm2mtest.BootstrapConfig{URI: "coaps://" + ts.svc.boot.SecureAddr().String(), PSKIdentity: "bs-" + ep, PSK: bsKey, Timeout: 5 * time.Second}
	refusing := bc
	refusing.RefuseFinish = "no usable server account"
	if _, _, err := lwm2mtest.Bootstrap(ctx, ep, refusing, nil, nil); err == nil {
		t.Fatal("a refused Finish bootstrapped")
	}
	waitFor(t, "the refused session stored", 30*time.Second, func() bool {
		ss := ts.bootstrapSessions(t, ep)
		return len(ss) == 1 && ss[0].Outcome == "failure"
	})
	cfg := fleetConfig(lwm2mtest.DeliveryPull)
	cfg.Endpoint = ep
	bd := lwm2mtest.NewBootstrapDevice(cfg, bc, nil)
	defer bd.Close()
	if err := bd.Start(ctx); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, ts)
	b.signIn(testAdminToken)
	b.open("#/devices/" + ep)
	b.waitJS("two bootstrap sessions", `document.querySelectorAll("#h-bootstrap ~ .job").length === 2`, 30*time.Second)
	got := b.text("main")
	for _, want := range []string{"Bootstrap history", "success", "failure", "Bootstrap-Finish /bs answered 4.06: no usable server account", "discover", "2.02", "finish"} {
		if !strings.Contains(got, want) {
			t.Errorf("device page lacks %q", want)
		}
	}
	b.screenshot("device-bootstrap")
}

// TestSimBootstrapFlags: --bootstrap's flags are checked before anything starts.
func TestSimBootstrapFlags(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"--bootstrap", "coaps://127.0.0.1:5784", "--bootstrap-psk-identity", "bs-{ep}", "--bootstrap-psk-key", "00ff"}, ""},
		{[]string{"--bootstrap", "coap://127.0.0.1:5783"}, ""},
		{[]string{"--bootstrap", "coaps://127.0.0.1:5784"}, "needs --bootstrap-psk-identity"},
		{[]string{"--bootstrap", "coaps://127.0.0.1:5784", "--bootstrap-psk-identity", "x", "--bootstrap-psk-key", "zz"}, "must be hex"},
		{[]string{"--bootstrap", "http://x"}, "want coaps://"},
		{[]string{"--bootstrap-psk-identity", "x"}, "need --bootstrap"},
	}
	for _, tt := range tests {
		_, err := parseSimFlags(tt.args, io.Discard, func(string) string { return "" })
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%v: err %v, want %q", tt.args, err, tt.err)
		}
	}
}
