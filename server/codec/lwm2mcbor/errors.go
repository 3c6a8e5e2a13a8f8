package lwm2mcbor

import "errors"

var (
	// ErrSyntax is a payload that is not LwM2M CBOR: invalid CBOR, a top level that
	// is not a map, or an item where a value or map should be.
	ErrSyntax = errors.New("not LwM2M CBOR")
	// ErrBadKey is a map key that is neither an id nor a non-empty array of ids, or an
	// id above 65534.
	ErrBadKey = errors.New("bad path key")
	// ErrTooDeep is a path of more than four ids.
	ErrTooDeep = errors.New("path deeper than a resource instance")
	// ErrNotResource is a value on a path shallower than a resource.
	ErrNotResource = errors.New("value on a path that is not a resource")
	// ErrNotUnderBase is a path that does not lie under the request's base path.
	ErrNotUnderBase = errors.New("record not under base path")
	// ErrWrongKind is a value the object model's type cannot take.
	ErrWrongKind = errors.New("value kind does not fit resource type")
	// ErrDuplicate is a path reached twice (e.g. through [3,0,1] and {3:{0:{1:..}}}).
	ErrDuplicate = errors.New("duplicate path")
	// ErrTooMany means the payload holds more records than the decoder accepts.
	ErrTooMany = errors.New("too many records")
	// ErrNotRepresentable is a value LwM2M CBOR cannot carry.
	ErrNotRepresentable = errors.New("value not representable")
)
