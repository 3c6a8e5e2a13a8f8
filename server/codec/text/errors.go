package text

import "errors"

var (
	// ErrBadBase is a base path that is not a resource or resource instance:
	// plain text and opaque carry exactly one value.
	ErrBadBase = errors.New("plain text and opaque need a resource or resource instance path")
	// ErrBadValue is a payload that does not parse as the resource's type.
	ErrBadValue = errors.New("bad value")
	// ErrRecords is an Encode call without exactly one record at the base path.
	ErrRecords = errors.New("need exactly one record at the base path")
	// ErrNoValue is a value these formats cannot carry (TypeNone, or non-opaque for opaque).
	ErrNoValue = errors.New("value cannot be carried by this format")
)
