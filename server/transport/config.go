package transport

import (
	"fmt"
	"runtime"
	"time"
)

// Config tunes an Endpoint. Start from DefaultConfig; the zero value of a field means "use the
// default" for every field except ACKRandomFactor, where 0 is replaced too (RFC 7252 requires >= 1).
type Config struct {
	// ACKTimeout is the initial retransmission timeout of a confirmable message (RFC 7252
	// ACK_TIMEOUT, 2 s). The first timeout is drawn at random from
	// [ACKTimeout, ACKTimeout*ACKRandomFactor] and doubles after each retransmission.
	ACKTimeout time.Duration
	// ACKRandomFactor spreads the initial timeout (RFC 7252 ACK_RANDOM_FACTOR, 1.5).
	ACKRandomFactor float64
	// MaxRetransmit is how many times a confirmable message is retransmitted before the
	// exchange fails with ErrTimeout (RFC 7252 MAX_RETRANSMIT, 4).
	MaxRetransmit int
	// ExchangeLifetime is how long the response to a non-idempotent request (and the
	// acknowledgement of a confirmable response) is kept to answer duplicates, and how long an
	// idle Block1 reassembly survives (RFC 7252 EXCHANGE_LIFETIME, 247 s).
	ExchangeLifetime time.Duration
	// MaxMessageSize is the largest datagram accepted; larger ones are dropped and counted
	// (RFC 7252 §4.6 recommends 1152 bytes).
	MaxMessageSize int
	// BlockSize is the preferred block size (16..1024, rounded down to a power of two) for
	// Block1 uploads by Do and for Block2 answers by the server.
	BlockSize int
	// MaxBodySize bounds a reassembled Block1 request body (server) and a reassembled Block2
	// response body (Do). Default 1 MiB.
	MaxBodySize int
	// Workers is the number of goroutines that decode datagrams and run the Handler
	// (default 4*GOMAXPROCS).
	Workers int
	// QueueSize is how many datagrams may wait for a worker; when the queue is full new
	// datagrams are dropped (the peer retransmits) and counted. Default 64*Workers.
	QueueSize int
	// ReadBuffer is the socket receive buffer requested (SO_RCVBUF; Linux caps it at
	// net.core.rmem_max). Bursts of registrations land here before a worker takes them.
	// Default 4 MiB; negative leaves the system default.
	ReadBuffer int
	// MaxPendingBlock1 bounds the number of concurrent incoming Block1 reassemblies; a new one
	// beyond it is answered 5.03. Reassemblies idle for ExchangeLifetime are discarded.
	// Default 1024.
	MaxPendingBlock1 int
}

// DefaultConfig returns the RFC 7252 transmission parameters and lwota's limits.
func DefaultConfig() Config {
	w := 4 * runtime.GOMAXPROCS(0)
	return Config{
		ACKTimeout:       2 * time.Second,
		ACKRandomFactor:  1.5,
		MaxRetransmit:    4,
		ExchangeLifetime: 247 * time.Second,
		MaxMessageSize:   1152,
		BlockSize:        1024,
		MaxBodySize:      1 << 20,
		Workers:          w,
		QueueSize:        64 * w,
		ReadBuffer:       4 << 20,
		MaxPendingBlock1: 1024,
	}
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.ACKTimeout <= 0 {
		c.ACKTimeout = d.ACKTimeout
	}
	if c.ACKRandomFactor == 0 {
		c.ACKRandomFactor = d.ACKRandomFactor
	}
	if c.ACKRandomFactor < 1 {
		return c, fmt.Errorf("transport: ACKRandomFactor %v < 1", c.ACKRandomFactor)
	}
	if c.MaxRetransmit <= 0 {
		c.MaxRetransmit = d.MaxRetransmit
	}
	if c.MaxRetransmit > 20 {
		return c, fmt.Errorf("transport: MaxRetransmit %d > 20", c.MaxRetransmit)
	}
	if c.ExchangeLifetime <= 0 {
		c.ExchangeLifetime = d.ExchangeLifetime
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.MaxMessageSize < 64 || c.MaxMessageSize > 65507 {
		return c, fmt.Errorf("transport: MaxMessageSize %d outside 64..65507", c.MaxMessageSize)
	}
	if c.BlockSize <= 0 {
		c.BlockSize = d.BlockSize
	}
	if c.BlockSize < 16 {
		return c, fmt.Errorf("transport: BlockSize %d < 16", c.BlockSize)
	}
	c.BlockSize = Block{SZX: SZXFor(c.BlockSize)}.Size()
	if c.MaxBodySize <= 0 {
		c.MaxBodySize = d.MaxBodySize
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64 * c.Workers
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = d.ReadBuffer
	}
	if c.MaxPendingBlock1 <= 0 {
		c.MaxPendingBlock1 = d.MaxPendingBlock1
	}
	return c, nil
}
