package lwm2mtest

import (
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/lwm2m"
)

func TestApplyProfiles(t *testing.T) {
	tests := []struct {
		name  string
		list  string
		check func(DeviceConfig) bool
		err   string
	}{
		{"none", "", func(c DeviceConfig) bool { return c.Delivery == "" && !c.StuckDownloading }, ""},
		{"push-only", "push-only", func(c DeviceConfig) bool { return c.Delivery == DeliveryPush && !c.StuckDownloading }, ""},
		{"both, spaces", " push-only , stuck-downloading ", func(c DeviceConfig) bool { return c.Delivery == DeliveryPush && c.StuckDownloading }, ""},
		{"unknown", "stuck-downloading,bogus", func(c DeviceConfig) bool { return c.Delivery == "" && !c.StuckDownloading },
			`unknown device profile "bogus" (valid: bootstrap-no-discover, bootstrap-refuse-finish, cid-padded, empty-device-type, gone-away, mbedtls2-record-version, nat-rebinding, no-composite, push-only, reports-by-send, stuck-downloading)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c DeviceConfig
			err := ApplyProfiles(&c, tc.list)
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if tc.err == "" && err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config after %q: %+v", tc.list, c)
			}
		})
	}
	// The real-client habits of issue 12, each selectable by name from `lwota sim --profile`.
	for _, n := range []string{"mbedtls2-record-version", "stuck-downloading", "push-only", "reports-by-send",
		"empty-device-type", "gone-away"} {
		if _, ok := LookupProfile(n); !ok {
			t.Errorf("profile %s is not registered", n)
		}
	}
	for _, n := range ProfileNames() {
		if p, _ := LookupProfile(n); p.Doc == "" || p.Apply == nil {
			t.Errorf("profile %s lacks a doc or an Apply", n)
		}
	}
}

// A stuck-downloading device reports State 1 from the start, answers every reset (Cancel,
// empty Package URI, empty Package) and a push as usual, and stays in State 1.
func TestStuckDownloading(t *testing.T) {
	s := newTestServer(t)
	d := startDevice(t, s, DeviceConfig{Object5Version: "1.1", StuckDownloading: true, Delivery: DeliveryPush})
	c := s.dm(t, d)
	waitFW(t, d, FWDownloading, FWResultInitial, 0)
	if a := c.post("/5/0/10", lwm2m.FormatText, nil); a.code != codes.Changed {
		t.Errorf("cancel: %v", a.code)
	}
	writeURI(t, c, "")
	if a := c.put("/5/0/0", lwm2m.FormatOpaque, nil); a.code != codes.Changed {
		t.Errorf("empty package: %v", a.code)
	}
	if a := c.put("/5/0/0", lwm2m.FormatOpaque, []byte("LWOTA-FW 6\n")); a.code != codes.Changed {
		t.Errorf("push: %v", a.code)
	}
	if st, res := d.FirmwareState(); st != FWDownloading || res != FWResultInitial {
		t.Errorf("after resets and a push: State %d, Result %d; want 1, 0", st, res)
	}
	// Push-only: a Package URI is refused.
	if a := c.put("/5/0/1", lwm2m.FormatText, []byte("coap://127.0.0.1/fw/x")); a.code != codes.MethodNotAllowed {
		t.Errorf("package URI on a push-only device: %v", a.code)
	}
	if v, _ := d.Value(lwm2m.NewPath(5, 0, 9)); v.Int != 1 {
		t.Errorf("/5/0/9 = %d, want 1", v.Int)
	}
}
