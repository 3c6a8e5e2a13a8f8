package linkformat

import "errors"

var (
	// ErrTooLarge is a payload over MaxSize bytes.
	ErrTooLarge = errors.New("linkformat: payload too large")
	// ErrTooManyLinks is a payload with more than MaxLinks links.
	ErrTooManyLinks = errors.New("linkformat: too many links")
	// ErrSyntax is anything that is not RFC 6690 link format.
	ErrSyntax = errors.New("linkformat: syntax error")
)
