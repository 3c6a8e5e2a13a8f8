package registration

import "time"

// Config bounds what a registration may carry and how lifetimes behave.
type Config struct {
	// DefaultLifetime applies when Register carries no lt (LwM2M default: 86400 s).
	DefaultLifetime uint32
	// MinLifetime and MaxLifetime clamp requested lifetimes; 0 disables the bound.
	MinLifetime, MaxLifetime uint32
	// MaxPayload is the largest object-list payload accepted, in bytes.
	MaxPayload int
	// MaxObjects is the largest number of links in an object list.
	MaxObjects int
	// MaxEndpointLen bounds endpoint names.
	MaxEndpointLen int
	// ExpiryInterval is how often lapsed registrations are looked for.
	ExpiryInterval time.Duration
	// InfoReadWorkers is how many background reads of Object 3 after a Register (see
	// SetInfoReader) run at once.
	InfoReadWorkers int
	// InfoReadQueue is how many of those reads may wait; a Register that finds the queue full
	// skips its read (counted), and the device is read at its next Register.
	InfoReadQueue int
	// InfoReadTimeout bounds one such read, so that a device that never answers frees its worker.
	InfoReadTimeout time.Duration
}

// DefaultConfig returns the limits lwota ships with.
func DefaultConfig() Config {
	return Config{
		DefaultLifetime: 86400,
		MinLifetime:     1,
		MaxLifetime:     0,
		MaxPayload:      64 << 10,
		MaxObjects:      1024,
		MaxEndpointLen:  255,
		ExpiryInterval:  time.Second,
		InfoReadWorkers: 32,
		InfoReadQueue:   4096,
		InfoReadTimeout: time.Minute,
	}
}
