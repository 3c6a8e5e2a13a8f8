package bootstrap_test

import (
	"testing"

	"github.com/lwota/lwota/server/bootstrap"
)

// FuzzBootstrapAccounts feeds Bootstrap-Discover answers to the parser that finds the bootstrap
// accounts: it must never panic, and every account it returns is a Security instance the
// payload named without an ssid.
func FuzzBootstrapAccounts(f *testing.F) {
	for _, s := range []string{
		`</>;lwm2m=1.1,</0/0>;uri="coap://bs.example.com",</0/1>;ssid=101;uri="coaps://dm.example.com",</1/0>;ssid=101,</3/0>`,
		`</0/0>,</0/5>;ssid=1`,
		`lwm2m="1.2",</0/65534>;uri="x"`,
		`</0>,</0/0/1>,<//0/1>`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := bootstrap.BootstrapAccounts(b)
		if err != nil && len(ids) > 0 {
			t.Fatalf("accounts %v with error %v", ids, err)
		}
	})
}

// TestBootstrapAccounts: the Security instances without ssid are the bootstrap accounts.
func TestBootstrapAccounts(t *testing.T) {
	tests := []struct {
		payload string
		want    []uint16
	}{
		{`</>;lwm2m=1.1,</0/0>;uri="coap://bs",</0/1>;ssid=101;uri="coaps://dm",</1/0>;ssid=101`, []uint16{0}},
		{`</0/3>;uri="coap://bs",</0/0>;ssid=1`, []uint16{3}},
		{`</0/1>;ssid=1,</1/0>`, nil},
	}
	for _, tt := range tests {
		got, err := bootstrap.BootstrapAccounts([]byte(tt.payload))
		if err != nil || len(got) != len(tt.want) {
			t.Fatalf("%s: %v, %v; want %v", tt.payload, got, err, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("%s: %v, want %v", tt.payload, got, tt.want)
			}
		}
	}
}
