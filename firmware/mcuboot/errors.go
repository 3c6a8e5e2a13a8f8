package mcuboot

import "errors"

// Errors callers branch on, wrapped with what exactly was wrong; test them with errors.Is.
var (
	// ErrNotMCUboot: the stream does not start with the MCUboot image magic.
	ErrNotMCUboot = errors.New("mcuboot: not an MCUboot image")
	// ErrTruncated: the stream ended before the header, body or TLV area it announced.
	ErrTruncated = errors.New("mcuboot: image truncated")
	// ErrMalformed: inconsistent sizes, bad TLV magic or lengths, an oversized TLV area,
	// or bytes after the TLV area.
	ErrMalformed = errors.New("mcuboot: malformed image")
	// ErrHashMismatch: a SHA-256 TLV differs from the digest of header, body and protected TLVs.
	ErrHashMismatch = errors.New("mcuboot: sha-256 TLV does not match the image")
)
