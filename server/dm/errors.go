package dm

import (
	"errors"
	"fmt"
)

// Errors callers branch on.
var (
	// ErrOffline: the device is not registered, or its lifetime ran out.
	ErrOffline = errors.New("dm: device offline")
	// ErrTimeout: the device did not answer within the exchange's time.
	ErrTimeout = errors.New("dm: device did not answer")
	// ErrAsleep: the device is in queue mode and asleep; DoNow and Push do not queue.
	ErrAsleep = errors.New("dm: device asleep")
	// ErrQueueFull: the sleeping device already has the maximum of queued requests.
	ErrQueueFull = errors.New("dm: request queue full")
	// ErrInvalid: the request itself is wrong (path depth, missing values, unsupported format).
	ErrInvalid = errors.New("dm: invalid request")
	// ErrUnavailable: lwota is starting or shutting down; the request may be tried again.
	ErrUnavailable = errors.New("dm: server not running")
)

// DeviceError is a non-success CoAP response from the device, such as 4.04 or 4.05.
type DeviceError struct {
	Code string // "4.04"
	Msg  string // the device's diagnostic payload, if any
}

func (e *DeviceError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("device answered %s: %s", e.Code, e.Msg)
	}
	return "device answered " + e.Code
}
