package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/storage/pgtest"
)

type deviceJSON struct {
	Endpoint        string `json:"endpoint"`
	Online          bool   `json:"online"`
	LwM2MVersion    string `json:"lwm2m_version"`
	Binding         string `json:"binding"`
	QueueMode       bool   `json:"queue_mode"`
	FirmwareVersion string `json:"firmware_version"`
	Objects         []struct {
		Path    string `json:"path"`
		Version string `json:"version"`
	} `json:"objects"`
}

type deviceList struct {
	Devices    []deviceJSON `json:"devices"`
	NextCursor string       `json:"next_cursor"`
}

type recordJSON struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type resultJSON struct {
	Code      string       `json:"code"`
	Format    string       `json:"format"`
	Records   []recordJSON `json:"records"`
	Links     string       `json:"links"`
	RequestID string       `json:"request_id"`
	State     string       `json:"state"`
}

func simTemplate() lwm2mtest.DeviceConfig {
	return lwm2mtest.DeviceConfig{
		Lifetime:        time.Hour,
		Binding:         "U",
		LwM2MVersion:    "1.1",
		Manufacturer:    "lwota",
		Model:           "sim-1",
		SerialNumber:    "SN-1",
		FirmwareVersion: "1.0.0",
		ContentFormats:  []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatText},
	}
}

// listAll walks the device list with cursor pagination.
func listAll(t *testing.T, ts *testService, query string) []deviceJSON {
	t.Helper()
	var all []deviceJSON
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		q := "/api/v1/devices?limit=250" + query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page deviceList
		if code := ts.apiCall(t, "GET", q, nil, &page); code != 200 {
			t.Fatalf("GET %s: %d", q, code)
		}
		all = append(all, page.Devices...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

// The acceptance in one pass: libcoap registers a device with a raw POST /rd; 1,000
// emulated devices register; the API lists all of them; /3/0/3 reads back in every format the
// device offers; write, execute and observe work end to end; a restart keeps every registration.
func TestServiceEndToEnd(t *testing.T) {
	backends := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { endToEnd(t, b.dsn(t)) })
	}
}

func endToEnd(t *testing.T, dsn string) {
	dataDir := t.TempDir()
	// The restart below comes back on this port, which must stay free while the service is down.
	ts := startService(t, dataDir, dsn, "--coap-addr", freeUDPBelowEphemeral(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// libcoap's client registers with a link-format object list.
	client := sysdeps.Require(t, "coap-client-notls")
	out, err := exec.CommandContext(ctx, client, "-m", "post", "-t", "40", "-B", "5",
		"-e", `</>;rt="oma.lwm2m";ct=11542,</1/0>,</3/0>,</5>;ver=1.1,</5/0>`,
		fmt.Sprintf("coap://%s/rd?ep=libcoap-dev&lt=600&lwm2m=1.1&b=U", ts.coap)).CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client-notls: %v: %s", err, out)
	}
	var lib deviceJSON
	if code := ts.apiCall(t, "GET", "/api/v1/devices/libcoap-dev", nil, &lib); code != 200 {
		t.Fatalf("libcoap device: status %d", code)
	}
	if !lib.Online || lib.LwM2MVersion != "1.1" || len(lib.Objects) != 4 || lib.Objects[2].Path != "/5" || lib.Objects[2].Version != "1.1" {
		t.Fatalf("libcoap device = %+v", lib)
	}

	// The libcoap client has exited and freed its port. A kernel hands freed ports out again: the
	// fleet's first device takes it, as any device's new socket may (the CI saw one do so), so
	// that lwota must not take that device's answers for libcoap-dev's.
	libReg, ok := ts.svc.core.Registry().Get("libcoap-dev")
	if !ok || !libReg.Addr.AddrPort.IsValid() {
		t.Fatalf("libcoap device not live with an address: %+v", libReg)
	}
	const n = 1000
	devices := make([]*lwm2mtest.Device, n)
	for i := range devices {
		cfg := simTemplate()
		cfg.Endpoint = fmt.Sprintf("urn:dev:sim:%04d", i)
		if i == 0 {
			cfg.LocalAddr, cfg.LocalPort = libReg.Addr.AddrPort.Addr(), int(libReg.Addr.AddrPort.Port())
		}
		devices[i] = lwm2mtest.NewDevice(cfg, nil)
	}
	fleet := lwm2mtest.FleetOf(devices)
	defer fleet.Close()
	if _, err := fleet.Start(ctx, ts.coap, 64); err != nil {
		t.Fatal(err)
	}
	if got := len(listAll(t, ts, "&prefix=urn:dev:sim:")); got != n {
		t.Fatalf("API lists %d sim devices, want %d", got, n)
	}
	if got := len(listAll(t, ts, "&online=true")); got != n+1 {
		t.Fatalf("API lists %d online devices, want %d", got, n+1)
	}

	ep := "urn:dev:sim:0042"
	esc := url.PathEscape(ep)
	for _, format := range []string{"tlv", "senml-json", "senml-cbor", "lwm2m-cbor", "text"} {
		t.Run("read /3/0/3 as "+format, func(t *testing.T) {
			var res resultJSON
			if code := ts.apiCall(t, "GET", "/api/v1/devices/"+esc+"/objects/3/0/3?format="+format, nil, &res); code != 200 {
				t.Fatalf("status %d: %+v", code, res)
			}
			if res.Code != "2.05" || res.Format != format || len(res.Records) != 1 || res.Records[0].Path != "/3/0/3" || res.Records[0].Value != "1.0.0" {
				t.Fatalf("read = %+v", res)
			}
		})
	}
	var dev deviceJSON
	ts.apiCall(t, "GET", "/api/v1/devices/"+esc, nil, &dev)
	if dev.FirmwareVersion != "1.0.0" {
		t.Errorf("firmware version from the read = %q, want 1.0.0", dev.FirmwareVersion)
	}
	// lwota reads /3/0 of every device after it registers.
	waitForFirmware(t, ctx, ts, fleet, "urn:dev:sim:", "1.0.0", 30*time.Second)
	// The libcoap client is gone and never answered /3/0; the device at its old port did not
	// answer for it either.
	if s := strangers(t, ts, fleet, "1.0.0"); s != "" {
		t.Errorf("a sim device answered for another:%s", s)
	}

	// Write the server lifetime, then read it back from the device.
	var wres resultJSON
	if code := ts.apiCall(t, "PUT", "/api/v1/devices/"+esc+"/objects/1/0/1", map[string]any{"value": 777}, &wres); code != 200 || wres.Code != "2.04" {
		t.Fatalf("write: %d %+v", code, wres)
	}
	d := fleet.Devices()[42]
	if v, ok := d.Value(lwm2m.MustParsePath("/1/0/1")); !ok || v.Int != 777 && v.Uint != 777 {
		t.Fatalf("device lifetime after write = %+v", v)
	}

	// Execute Reboot with arguments: the device restarts and registers again from a new port, and
	// lwota must reach it at its new address afterwards.
	before := d.Stats()
	if code := ts.apiCall(t, "POST", "/api/v1/devices/"+esc+"/objects/3/0/4/execute", map[string]any{"args": "0='now'"}, &wres); code != 200 || wres.Code != "2.04" {
		t.Fatalf("execute: %d %+v", code, wres)
	}
	if d.Stats().Executes != before.Executes+1 {
		t.Fatalf("device executes = %d, want %d", d.Stats().Executes, before.Executes+1)
	}
	waitFor(t, "the rebooted device to register again", 30*time.Second, func() bool {
		live, ok := ts.svc.core.Registry().Get(ep)
		return d.Stats().Registrations > before.Registrations && ok && d.LocalAddr() != nil && live.Addr.AddrPort.String() == d.LocalAddr().String()
	})

	// Observe the battery level; a change on the device arrives as an event and as the latest value.
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	evs := ts.sseEvents(t, evCtx, "?endpoint="+url.QueryEscape(ep))
	if code := ts.apiCall(t, "POST", "/api/v1/devices/"+esc+"/objects/3/0/9/observe", nil, &wres); code != 200 || wres.Code != "2.05" {
		t.Fatalf("observe: %d %+v", code, wres)
	}
	d.SetValue(lwm2m.MustParsePath("/3/0/9"), lwm2m.Integer(42))
	waitForNotification(t, evs, "/3/0/9", 42)

	// The device reboots and forgets its observers; its new Register makes lwota observe again.
	regsBefore := d.Stats().Registrations
	if err := d.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device to register again and be observed again", 30*time.Second, func() bool {
		return d.Stats().Registrations > regsBefore && d.Observations() > 0
	})
	d.SetValue(lwm2m.MustParsePath("/3/0/9"), lwm2m.Integer(43))
	waitForNotification(t, evs, "/3/0/9", 43)

	// Unknown devices and paths get clear errors.
	if code := ts.apiCall(t, "GET", "/api/v1/devices/nobody/objects/3/0/3", nil, nil); code != 404 {
		t.Errorf("read on unknown device: %d, want 404", code)
	}
	if code := ts.apiCall(t, "GET", "/api/v1/devices/"+esc+"/objects/3/0/999", nil, nil); code != 404 {
		t.Errorf("read of a missing resource: %d, want 404", code)
	}

	// A restart keeps all registrations: nobody registers again, yet all are listed and reachable.
	// A restarted server comes back on its own port, as devices expect.
	ts.shutdown(t)
	ts2 := startService(t, dataDir, dsn, "--coap-addr", ts.coap)
	if got := ts2.svc.core.Registry().Count(); got != n+1 {
		t.Fatalf("after restart the registry holds %d, want %d", got, n+1)
	}
	if got := len(listAll(t, ts2, "&online=true")); got != n+1 {
		t.Fatalf("after restart the API lists %d online, want %d", got, n+1)
	}
	var res resultJSON
	if code := ts2.apiCall(t, "GET", "/api/v1/devices/"+esc+"/objects/1/0/1", nil, &res); code != 200 || len(res.Records) != 1 {
		t.Fatalf("read after restart: %d %+v", code, res)
	}
	// The observation survives the restart too: a notification still finds its way.
	evs2 := ts2.sseEvents(t, evCtx, "?endpoint="+url.QueryEscape(ep))
	d.SetValue(lwm2m.MustParsePath("/3/0/9"), lwm2m.Integer(17))
	waitForNotification(t, evs2, "/3/0/9", 17)
}

func waitForNotification(t *testing.T, evs <-chan map[string]any, path string, want float64) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev["type"] != "notification" {
				continue
			}
			data, _ := ev["data"].(map[string]any)
			recs, _ := data["records"].([]any)
			for _, r := range recs {
				rec, _ := r.(map[string]any)
				if rec["path"] == path && rec["value"] == want {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no notification of %s = %v", path, want)
		}
	}
}

// Malformed datagrams are dropped or refused and change nothing.
func TestServiceRefusesBadInput(t *testing.T) {
	ts := startService(t, t.TempDir(), "")
	conn, err := net.Dial("udp", ts.coap)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := [][]byte{
		{},
		{0x00},
		{0xff, 0xff, 0xff, 0xff},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0x40, 0x02, 0x00, 0x01, 0xb2, 'r', 'd', 0x4f}, // option delta 15 without payload marker semantics
	}
	for _, b := range junk {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	client := sysdeps.Require(t, "coap-client-notls")
	cases := []struct {
		name, query, payload, want string
	}{
		{"missing endpoint", "lt=60", "</1/0>", "4.00"},
		{"unsupported version", "ep=v9&lwm2m=9.9", "</1/0>", "4.12"},
		{"bad object list", "ep=bad-links", "</3/0/1/2/3>", "4.00"},
		{"bad lifetime", "ep=bad-lt&lt=forever", "</1/0>", "4.00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := exec.Command(client, "-m", "post", "-t", "40", "-B", "5", "-e", tc.payload,
				fmt.Sprintf("coap://%s/rd?%s", ts.coap, tc.query)).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("coap-client output %q does not show %s", out, tc.want)
			}
		})
	}
	var list deviceList
	ts.apiCall(t, "GET", "/api/v1/devices", nil, &list)
	if len(list.Devices) != 0 {
		t.Fatalf("bad input registered %d devices: %+v", len(list.Devices), list.Devices)
	}
}
