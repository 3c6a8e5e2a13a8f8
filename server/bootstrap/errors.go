package bootstrap

import "errors"

// Errors callers branch on.
var (
	// ErrNotFound: no configuration (or session) for this endpoint, prefix or label.
	ErrNotFound = errors.New("bootstrap: not found")
	// ErrInvalid: a configuration that cannot be written to a device (bad URI, lifetime, scope...).
	ErrInvalid = errors.New("bootstrap: invalid configuration")
)
