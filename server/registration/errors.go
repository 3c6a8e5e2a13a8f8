package registration

import (
	"errors"
	"fmt"
)

// Errors the registry answers Register/Update/De-register with; each maps to one CoAP code.
var (
	// ErrBadRequest: missing or malformed parameters or object list (4.00).
	ErrBadRequest = errors.New("bad registration")
	// ErrForbidden: the peer may not act for this endpoint or registration (4.03).
	ErrForbidden = errors.New("forbidden")
	// ErrVersion: the LwM2M version is not one lwota speaks (4.12).
	ErrVersion = errors.New("unsupported lwm2m version")
	// ErrSecuredEndpoint: a peer without security (plain CoAP, NoSec) tried to register, update
	// or de-register an endpoint that has a DTLS credential or a live secured registration
	// (4.03). It matches ErrForbidden; such refusals are counted and audited apart.
	ErrSecuredEndpoint = fmt.Errorf("%w: the endpoint is secured (DTLS); NoSec (plain CoAP) may not act for it", ErrForbidden)
	// ErrTooLarge: the payload or object list is over the configured limits (4.13).
	ErrTooLarge = errors.New("registration too large")
)
