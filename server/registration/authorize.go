package registration

import (
	"context"

	"github.com/lwota/lwota/server/transport"
)

// Authorizer decides whether a peer may register as an endpoint, and whether a peer without a
// security identity (NoSec) may update or de-register it: a NoSec peer's address is all that
// ties it to a registration, so the endpoint's security is checked on every operation (a DTLS
// peer's identity is checked against the registration's by the registry itself). An error
// wrapping ErrForbidden is answered 4.03 with the error as the diagnostic (ErrSecuredEndpoint is
// also counted and audited); any other error 5.00.
type Authorizer interface {
	AuthorizeRegister(ctx context.Context, from transport.Peer, endpoint string) error
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, from transport.Peer, endpoint string) error

// AuthorizeRegister calls f.
func (f AuthorizerFunc) AuthorizeRegister(ctx context.Context, from transport.Peer, endpoint string) error {
	return f(ctx, from, endpoint)
}

type authorizerBox struct{ a Authorizer }

// SetAuthorizer makes Register ask a, before anything is stored, whether the peer may register as
// the endpoint it names; nil removes the check.
func (r *Registry) SetAuthorizer(a Authorizer) {
	if a == nil {
		r.authz.Store(nil)
		return
	}
	r.authz.Store(&authorizerBox{a})
}
