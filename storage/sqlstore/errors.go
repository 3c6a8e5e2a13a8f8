package sqlstore

import "errors"

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("sqlstore: closed")
