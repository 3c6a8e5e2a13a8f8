package senml

import "errors"

var (
	// ErrSyntax is a payload that is not a SenML pack: invalid JSON/CBOR, not an
	// array of maps, or a label holding the wrong kind of item.
	ErrSyntax = errors.New("not a SenML pack")
	// ErrBadName is a bn+n that is not an absolute LwM2M path.
	ErrBadName = errors.New("name is not an LwM2M path")
	// ErrNotUnderBase is a record whose path does not lie under the request's base path.
	ErrNotUnderBase = errors.New("record not under base path")
	// ErrWrongKind is a value the object model's type cannot take (a boolean for an integer).
	ErrWrongKind = errors.New("value kind does not fit resource type")
	// ErrMultipleValues is a record carrying more than one of v, vs, vb, vd, vlo.
	ErrMultipleValues = errors.New("more than one value in record")
	// ErrNotResource is a value on a path shallower than a resource.
	ErrNotResource = errors.New("value on a path that is not a resource")
	// ErrMustUnderstand is a label ending in '_' (RFC 8428 §4.4) that this decoder does not know.
	ErrMustUnderstand = errors.New("unknown must-understand label")
	// ErrBadTime is a bt/t that is not a finite time within ±3000 years of 1970.
	ErrBadTime = errors.New("bad time")
	// ErrTooMany means the pack holds more records than the decoder accepts.
	ErrTooMany = errors.New("too many records")
	// ErrNotRepresentable is a value the format cannot write (NaN in JSON, ...).
	ErrNotRepresentable = errors.New("value not representable")
)
