package tlv

import "errors"

var (
	// ErrTruncated means a header or value runs past the end of its enclosing data.
	ErrTruncated = errors.New("truncated")
	// ErrInvalidID is an identifier of 65535, which LwM2M reserves.
	ErrInvalidID = errors.New("invalid identifier")
	// ErrNesting is a TLV of a kind that cannot appear where it was found
	// (a resource instance directly inside an object instance, ...).
	ErrNesting = errors.New("bad nesting")
	// ErrBadBase is a base path TLV cannot address (the root) or one the payload contradicts.
	ErrBadBase = errors.New("payload does not match base path")
	// ErrBadValue is a value whose length or content does not fit the resource's type.
	ErrBadValue = errors.New("bad value")
	// ErrTooMany means the payload holds more records than the decoder accepts.
	ErrTooMany = errors.New("too many records")
	// ErrDuplicate is a path present twice in one payload.
	ErrDuplicate = errors.New("duplicate path")
	// ErrTooLarge is a value longer than the 24-bit TLV length allows.
	ErrTooLarge = errors.New("value too large")
	// ErrNotUnderBase is a record handed to Encode that does not lie under the base path.
	ErrNotUnderBase = errors.New("record not under base path")
	// ErrMixed is a resource given both as a single value and as resource instances.
	ErrMixed = errors.New("resource is both single and multiple")
	// ErrNoValue is a record whose value TLV cannot carry (TypeNone).
	ErrNoValue = errors.New("value has no TLV form")
)
