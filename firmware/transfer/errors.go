package transfer

import "errors"

// Errors callers branch on.
var (
	// ErrInvalid is Parse's error for a token that is malformed, of an unknown version, or
	// whose MAC does not verify: devices are answered 4.04, as for a URI that never existed.
	ErrInvalid = errors.New("transfer: invalid token")
	// ErrExpired is Parse's error for an authentic token past its expiry: 4.04 "expired".
	ErrExpired = errors.New("transfer: token expired")
	// ErrForbidden is what Grants returns when the token's job may not be served to this peer
	// (the job belongs to another device, or it is no longer active): 4.03.
	ErrForbidden = errors.New("transfer: forbidden")
	// ErrURITooLong is URI's error when the base and the token exceed 255 characters (the
	// LwM2M Package URI limit).
	ErrURITooLong = errors.New("transfer: uri longer than 255 characters")
)
