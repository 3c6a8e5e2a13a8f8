package clustere2e

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// A node behind nginx sees nginx's address for every device. With a source rate limit that
// applies to that address, the devices share one device's allowance and most cannot register;
// with --trusted-proxies naming nginx, each nginx session (one device) has its own, and all
// register.
func TestTrustedProxiesThroughNginx(t *testing.T) {
	const devices = 30
	for _, tc := range []struct {
		name    string
		trusted bool
	}{{"without --trusted-proxies", false}, {"with --trusted-proxies", true}} {
		t.Run(tc.name, func(t *testing.T) {
			// Two datagrams a second, bursts of four: one device registers well within it.
			args := []string{"--coap-source-rate", "2", "--coap-source-rate-exempt", "none"}
			if tc.trusted {
				args = append(args, "--trusted-proxies", "127.0.0.1/32")
			}
			c := startBehindNginx(t, 1, args...)
			tmpl := deviceTemplate()
			tmpl.RequestTimeout, tmpl.RegisterRetry = 5*time.Second, 0
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			var mu sync.Mutex
			registered := 0
			for i := range devices {
				cfg := tmpl
				cfg.Endpoint = "behind-" + strconv.Itoa(i)
				d := lwm2mtest.NewDevice(cfg, nil)
				t.Cleanup(func() { _ = d.Close() })
				wg.Add(1)
				go func() {
					defer wg.Done()
					if d.Start(ctx, c.lb.Addr("coap")) == nil {
						mu.Lock()
						registered++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			limited := c.nodes[0].metric(t, "lwota_transport_limit_exceeded_total")
			t.Logf("%d of %d registered; %v datagrams over the source rate", registered, devices, limited)
			if tc.trusted && registered != devices {
				t.Fatalf("%d of %d devices behind a trusted nginx registered: they were limited as one source", registered, devices)
			}
			if !tc.trusted && registered > devices/2 {
				t.Fatalf("%d of %d devices registered through an untrusted nginx at 2 datagrams/s: the test proves nothing", registered, devices)
			}
		})
	}
}
