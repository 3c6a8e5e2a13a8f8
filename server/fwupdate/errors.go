package fwupdate

import "errors"

// Errors a caller must tell apart.
var (
	// ErrInvalidTransition: the transition table does not allow the move (Apply).
	ErrInvalidTransition = errors.New("fwupdate: invalid transition")
	// ErrJobNotFound: no job has this ID (Store).
	ErrJobNotFound = errors.New("fwupdate: job not found")
	// ErrActiveJob: the endpoint already has a job that is not terminal; a device has at most one (Store).
	ErrActiveJob = errors.New("fwupdate: endpoint already has an active job")
	// ErrStaleJob: the stored job is no longer at the transition's predecessor, because another
	// writer saved a transition of it first (Store.SaveTransition).
	ErrStaleJob = errors.New("fwupdate: stale job")
)
