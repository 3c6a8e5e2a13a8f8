package send

import "errors"

// Errors Decode returns; the handler answers each with its own CoAP code.
var (
	// ErrFormat: the payload is not SenML JSON, SenML CBOR or LwM2M CBOR (4.15).
	ErrFormat = errors.New("send: unsupported content format")
	// ErrPayload: the payload does not decode, is empty, or names paths that are not
	// resources or resource instances (4.00).
	ErrPayload = errors.New("send: bad payload")
	// ErrTooLarge: more records than the configured limit (4.13).
	ErrTooLarge = errors.New("send: too many records")
)
