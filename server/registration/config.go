package registration

import (
	"time"

	"github.com/lwota/lwota/server/lwm2m"
)

// DefaultMaxLifetime is 30 days: far above what battery devices ask for (hours to a few days)
// and short enough that a device that went silent drops off within a month.
const DefaultMaxLifetime = 30 * 24 * 3600

// Config bounds what a registration may carry and how lifetimes behave.
type Config struct {
	// DefaultLifetime applies when Register carries no lt (LwM2M default: 86400 s).
	DefaultLifetime uint32
	// MinLifetime raises shorter requested lifetimes to it; 0 disables the bound.
	MinLifetime uint32
	// MaxLifetime is the longest lifetime a Register or Update may ask for, in seconds: a
	// longer lt is refused with 4.00, since a device that asked for lt=4294967295 would stay
	// "online" until 2163 once it went silent. 0 disables the bound.
	MaxLifetime uint32
	// MaxPayload is the largest object-list payload accepted, in bytes.
	MaxPayload int
	// MaxObjects is the largest number of links in an object list.
	MaxObjects int
	// MaxEndpointLen bounds endpoint names; lwm2m.MaxEndpointLen (252) is the longest any
	// device can send, and larger values act as it.
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
	// Shared is set when several servers share the store (a cluster): an Update for a
	// registration another server took is looked up in the store (IDFinder) instead of 4.04.
	Shared bool
}

// DefaultConfig returns the limits lwota ships with.
func DefaultConfig() Config {
	return Config{
		DefaultLifetime: 86400,
		MinLifetime:     1,
		MaxLifetime:     DefaultMaxLifetime,
		MaxPayload:      64 << 10,
		MaxObjects:      1024,
		MaxEndpointLen:  lwm2m.MaxEndpointLen,
		ExpiryInterval:  time.Second,
		InfoReadWorkers: 32,
		InfoReadQueue:   4096,
		InfoReadTimeout: time.Minute,
	}
}
