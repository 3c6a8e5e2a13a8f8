package dm

import "time"

// Config tunes how requests reach devices.
type Config struct {
	// AwakeWindow is how long a queue-mode device listens after its last uplink
	// (MAX_TRANSMIT_WAIT, 93 s, by default; Transport §6.5).
	AwakeWindow time.Duration
	// MaxQueued bounds the requests waiting for one sleeping device.
	MaxQueued int
	// ExchangeTimeout bounds one request to a device, retransmissions included.
	ExchangeTimeout time.Duration
	// MaxQueueAttempts is how many wake-ups a queued request may be tried at before it fails.
	MaxQueueAttempts int
	// SoleQueue says that no other process queues requests in this client's store (one lwota
	// node, not a cluster). LoadQueued then counts every endpoint's queued requests once, at
	// start, and a device with none is never looked up at its wake-ups: without it the first
	// wake-up of each endpoint since start reads the store, a query per registration of a
	// fleet that has nothing queued. With several nodes sharing the store leave it off, since
	// another node may queue for a device this one serves.
	SoleQueue bool
}

// DefaultConfig returns the values of the LwM2M transport binding's defaults.
func DefaultConfig() Config {
	return Config{
		AwakeWindow:      93 * time.Second,
		MaxQueued:        32,
		ExchangeTimeout:  100 * time.Second,
		MaxQueueAttempts: 5,
	}
}
