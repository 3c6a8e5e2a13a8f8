package registration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// identityAuthorizer lets identity "" register only when noSec, and a PSK identity only as the
// endpoint bound to it.
func identityAuthorizer(noSec bool, bound map[string]string) registration.Authorizer {
	return registration.AuthorizerFunc(func(_ context.Context, from transport.Peer, endpoint string) error {
		if from.Identity == "" {
			if noSec {
				return nil
			}
			return fmt.Errorf("%w: NoSec registrations are disabled", registration.ErrForbidden)
		}
		if bound[from.Identity] == "broken" {
			return errors.New("credential store down")
		}
		if bound[from.Identity] != endpoint {
			return fmt.Errorf("%w: identity %q may not register as %q", registration.ErrForbidden, from.Identity, endpoint)
		}
		return nil
	})
}

func TestAuthorizeRegister(t *testing.T) {
	bound := map[string]string{"id-1": "dev-1", "id-x": "broken"}
	for _, tc := range []struct {
		name     string
		noSec    bool
		identity string
		endpoint string
		want     transport.Code
		diag     string
	}{
		{"psk own endpoint", false, "id-1", "dev-1", transport.Created, ""},
		{"psk other endpoint", false, "id-1", "dev-2", transport.Forbidden, `may not register as "dev-2"`},
		{"psk unknown identity", false, "id-9", "dev-1", transport.Forbidden, "may not register"},
		{"nosec refused", false, "", "dev-1", transport.Forbidden, "NoSec"},
		{"nosec allowed", true, "", "dev-1", transport.Created, ""},
		{"authorizer fails", true, "id-x", "dev-1", transport.InternalServerError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.reg.SetAuthorizer(identityAuthorizer(tc.noSec, bound))
			resp := f.do(peer(40000, tc.identity), request(transport.POST, "/rd", "</3/0>", "ep="+tc.endpoint))
			if resp.Code != tc.want {
				t.Fatalf("Register answered %s (%s), want %s", resp.Code, resp.Payload, tc.want)
			}
			if tc.diag != "" && !strings.Contains(string(resp.Payload), tc.diag) {
				t.Errorf("diagnostic %q does not say %q", resp.Payload, tc.diag)
			}
			_, live := f.reg.Get(tc.endpoint)
			_, stored := f.store.GetRegistration(context.Background(), tc.endpoint)
			if ok := tc.want == transport.Created; live != ok || (stored == nil) != ok {
				t.Errorf("registered in memory %v, stored err %v; want registered %v", live, stored, ok)
			}
		})
	}
}

func TestAuthorizerRemoved(t *testing.T) {
	f := newFixture(t)
	f.reg.SetAuthorizer(identityAuthorizer(false, nil))
	if resp := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-1")); resp.Code != transport.Forbidden {
		t.Fatalf("answered %s, want 4.03", resp.Code)
	}
	f.reg.SetAuthorizer(nil)
	if resp := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-1")); resp.Code != transport.Created {
		t.Fatalf("answered %s without an authorizer, want 2.01", resp.Code)
	}
}
