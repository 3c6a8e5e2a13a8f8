package server_test

import (
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Registration limits on the wire (issue 12, item 19): the longest endpoint name is 252 bytes,
// what a 255-byte Uri-Query option holds after "ep="; one byte more makes the option longer than
// CoAP allows, which the CoAP layer answers 4.02 Bad Option (RFC 7252 §5.4.3) before the
// registry sees it. A lifetime over the maximum and an alternate path with ".." are 4.00 with a
// diagnostic.
func TestRegistrationLimitsOnTheWire(t *testing.T) {
	h := startHarness(t, nil)
	cc := plainClient(t, h.srv.Addr())
	tests := []struct {
		name  string
		links string
		query []string
		want  codes.Code
		diag  string
	}{
		{"252-byte endpoint", "</3/0>", []string{"ep=" + strings.Repeat("e", 252)}, codes.Created, ""},
		{"253-byte endpoint", "</3/0>", []string{"ep=" + strings.Repeat("f", 253)}, codes.BadOption, ""},
		{"lifetime until 2163", "</3/0>", []string{"ep=long-lived", "lt=4294967295"}, codes.BadRequest, "longest lifetime"},
		{"alternate path /../..", `</../..>;rt="oma.lwm2m",</../../3/0>`, []string{"ep=climber"}, codes.BadRequest, `"/../.."`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, diag := post(t, cc, "/rd", message.AppLinkFormat, []byte(tc.links), tc.query...)
			if c != tc.want || !strings.Contains(diag, tc.diag) {
				t.Fatalf("answered %s %q, want %s with %q", c, diag, tc.want, tc.diag)
			}
		})
	}
}
