package clustere2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// deviceTemplate is the simulated devices' configuration: patient with a busy machine.
func deviceTemplate() lwm2mtest.DeviceConfig {
	return lwm2mtest.DeviceConfig{
		Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1", Manufacturer: "lwota", Model: "sim-1",
		FirmwareVersion: "1.0.0", ContentFormats: []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLCBOR},
		RequestTimeout: 30 * time.Second, RegisterRetry: time.Second,
		UpdateDelay: 50 * time.Millisecond, BlockTimeout: 500 * time.Millisecond, BlockRetries: 8,
	}
}

// fleets is the plain CoAP and the DTLS PSK half of a fleet.
type fleets struct{ plain, dtls *lwm2mtest.Fleet }

func (f fleets) devices() []*lwm2mtest.Device {
	return append(append([]*lwm2mtest.Device(nil), f.plain.Devices()...), f.dtls.Devices()...)
}

// registerFleet registers n devices through the cluster's nginx: the first half over plain
// CoAP ("plain-i"), the second over DTLS with a PSK ("psk-i") stored through the first node.
func registerFleet(t *testing.T, c *cluster, n int, tmpl lwm2mtest.DeviceConfig, logger *slog.Logger) fleets {
	t.Helper()
	half := n / 2
	pskNames := make([]string, n-half)
	for i := range pskNames {
		pskNames[i] = "psk-" + strconv.Itoa(i)
	}
	importPSKs(t, c.nodes[0], pskNames)

	plain := lwm2mtest.NewFleet(half, tmpl, func(i int) string { return "plain-" + strconv.Itoa(i) }, logger)
	t.Cleanup(func() { _ = plain.Close() })
	// A DTLS device's PSK follows its endpoint, so the fleet is built device by device.
	secure := make([]*lwm2mtest.Device, len(pskNames))
	for i, ep := range pskNames {
		cfg := tmpl
		cfg.Endpoint, cfg.PSKIdentity, cfg.PSK = ep, "id-"+ep, pskOf(ep)
		secure[i] = lwm2mtest.NewDevice(cfg, logger)
	}
	dtls := lwm2mtest.FleetOf(secure)
	t.Cleanup(func() { _ = dtls.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, errs[0] = plain.Start(ctx, c.lb.Addr("coap"), 32) }()
	go func() { defer wg.Done(); _, errs[1] = dtls.Start(ctx, c.lb.Addr("coaps"), 16) }()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s devices through nginx: %v", []string{"plain CoAP", "DTLS"}[i], err)
		}
	}
	return fleets{plain, dtls}
}

// listDevices walks a node's device list and returns the endpoints that are online.
func listDevices(t testing.TB, nd *node) map[string]bool {
	t.Helper()
	type page struct {
		Devices []struct {
			Endpoint string `json:"endpoint"`
			Online   bool   `json:"online"`
		} `json:"devices"`
		NextCursor string `json:"next_cursor"`
	}
	online := map[string]bool{}
	cursor := ""
	for range 1000 {
		q := "/api/v1/devices?limit=250"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var p page
		if code := nd.api(t, "GET", q, nil, &p); code != 200 {
			t.Fatalf("GET %s at %s: %d", q, nd.name, code)
		}
		for _, d := range p.Devices {
			if d.Online {
				online[d.Endpoint] = true
			}
		}
		if p.NextCursor == "" {
			return online
		}
		cursor = p.NextCursor
	}
	t.Fatalf("%s: the device list did not end", nd.name)
	return nil
}

// Three nodes behind nginx (UDP, affinity on source address and port) on one PostgreSQL: 1,000
// simulated devices, half plain CoAP and half DTLS PSK (stored through one node, used at all
// three), register through the balancer. Every device is registered once, at one node; every
// node took a share; every node's API lists every device online.
func TestClusterRegistrationThroughNginx(t *testing.T) {
	const devices = 1000
	c := startCluster(t, 3)
	f := registerFleet(t, c, devices, deviceTemplate(), nil)

	// Each Register reached one node: the balancer keeps a device's session on one node, so
	// the nodes' counters add up to the fleet, and the hash spread it over all three.
	total := 0.0
	var shares []string
	for _, nd := range c.nodes {
		got := nd.metric(t, "lwota_registrations_total")
		total += got
		shares = append(shares, fmt.Sprintf("%s %v", nd.name, got))
		if got == 0 {
			t.Errorf("%s took no registration: the balancer does not spread devices", nd.name)
		}
	}
	if int(total) != devices {
		t.Errorf("registrations accepted over the nodes: %v (%v), want %d", total, shares, devices)
	}
	t.Logf("registrations per node: %v", shares)
	for _, nd := range c.nodes {
		online := listDevices(t, nd)
		missing := 0
		for _, d := range f.devices() {
			if !online[d.Endpoint()] {
				if missing++; missing <= 5 {
					t.Errorf("%s: %s not listed online", nd.name, d.Endpoint())
				}
			}
		}
		if missing > 0 {
			t.Errorf("%s lists %d of %d devices online", nd.name, devices-missing, devices)
		}
	}
	// Every device is owned by exactly one node, the one that took its Register: each node
	// owns as many devices as it accepted Registers. An API read at a node that does not own a
	// device is handed to the owner and answers with the device's value.
	owners := checkOwnership(t, c, c.nodes, f.devices())
	for _, nd := range c.nodes {
		owned := 0
		for _, o := range owners {
			if o == nd {
				owned++
			}
		}
		if regs := nd.metric(t, "lwota_registrations_total"); int(regs) != owned {
			t.Errorf("%s took %v Registers but owns %d devices", nd.name, regs, owned)
		}
	}
	crossReads(t, c.nodes, f, owners, 3)
}
