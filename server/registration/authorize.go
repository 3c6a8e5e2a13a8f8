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

// NoSecFolder is the optional capability of an Authorizer whose only question about a NoSec
// peer, once NoSec is allowed at all, is whether the endpoint has a credential in the registry's
// store: the registry then leaves that question to the store's touch of a NoSec Update
// (NoSecToucher) and asks nothing before it. Every other write (Register, De-register, an
// Update that rewrites the whole row) still asks AuthorizeRegister.
type NoSecFolder interface {
	// FoldsNoSecCheck reports whether AuthorizeRegister(ctx, from, endpoint) would refuse from
	// exactly when the endpoint has a credential in store (ErrSecuredEndpoint) and allow it
	// otherwise, for any endpoint: then store's TouchRegistrationNoSec checks the same thing.
	FoldsNoSecCheck(from transport.Peer, store NoSecToucher) bool
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
