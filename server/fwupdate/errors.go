package fwupdate

import "errors"

// Errors a caller must tell apart.
var (
	// ErrInvalidTransition: the transition table does not allow the move (Apply), or a job
	// cannot be cancelled because it already ended (Driver.Cancel).
	ErrInvalidTransition = errors.New("fwupdate: invalid transition")
	// ErrJobNotFound: no job has this ID (Store).
	ErrJobNotFound = errors.New("fwupdate: job not found")
	// ErrActiveJob: the endpoint already has a job that is not terminal; a device has at most one (Store).
	ErrActiveJob = errors.New("fwupdate: endpoint already has an active job")
	// ErrStaleJob: the stored job is no longer at the transition's predecessor, because another
	// writer saved a transition of it first (Store.SaveTransition).
	ErrStaleJob = errors.New("fwupdate: stale job")
	// ErrInvalidRequest: a StartRequest the driver refuses (unknown method, impossible policy).
	ErrInvalidRequest = errors.New("fwupdate: invalid request")
	// ErrImageNotFound: the image a job names does not exist (Packages, Driver.Start).
	ErrImageNotFound = errors.New("fwupdate: image not found")
	// ErrDeviceNotFound: the endpoint never registered (Driver.Start).
	ErrDeviceNotFound = errors.New("fwupdate: device not found")
	// ErrForbidden: a download was asked for a job that is not the asker's or not delivering
	// (Driver.Granted).
	ErrForbidden = errors.New("fwupdate: download not allowed")
	// ErrNotRunning: the driver's Run has not started or has ended.
	ErrNotRunning = errors.New("fwupdate: driver not running")
)
