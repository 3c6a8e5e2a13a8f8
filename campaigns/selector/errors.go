package selector

import (
	"errors"
	"fmt"
)

// Limits of a selector. They keep parsing, storing and matching a selector cheap, and each one
// exceeded is refused with an error that says which.
const (
	MaxQueryLen  = 4096  // bytes of a query given to Parse
	MaxDepth     = 32    // nested parentheses and 'not's
	MaxEndpoints = 10000 // endpoints of an explicit list (Endpoints)
)

// ErrLimit is wrapped by every error about an exceeded limit, so that a caller can tell "too
// big" from "wrong".
var ErrLimit = errors.New("selector: limit exceeded")

// SyntaxError is a query Parse refuses, with the column (in characters, from 1) where reading
// stopped. The API shows Column to point at the mistake.
type SyntaxError struct {
	Column int
	Msg    string
	limit  bool // the error is about MaxDepth
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("selector: column %d: %s", e.Column, e.Msg)
}

// Is makes errors.Is(err, ErrLimit) true for a nesting that is too deep.
func (e *SyntaxError) Is(target error) bool { return e.limit && target == ErrLimit }
