package transport

import (
	"fmt"
	"net/netip"
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
	// beyond it takes the place of the least recently active one if that one has stalled (idle
	// for ACKTimeout), else it is answered 5.03. Default 1024.
	MaxPendingBlock1 int
	// MaxBlock1PerPeer bounds the concurrent incoming Block1 reassemblies of one peer address
	// (IP and port: one device), so that one device cannot take every MaxPendingBlock1 slot; a
	// new one beyond it is answered 5.03. Default 4.
	MaxBlock1PerPeer int
	// MaxBlock1PerIP bounds the concurrent incoming Block1 reassemblies from one IP address,
	// all ports together, so that one host opening sockets cannot fill MaxPendingBlock1; a new
	// one beyond it takes the place of that address's least recently active one if that one has
	// stalled, else it is answered 5.03. Devices behind one NAT share it; SourceExempt
	// prefixes are not limited by it. Default 64.
	MaxBlock1PerIP int
	// Block1Timeout is how long an incomplete incoming Block1 reassembly may go without a
	// block before it is dropped. Default 45 s, RFC 7252 MAX_TRANSMIT_SPAN (with a zero field:
	// computed from ACKTimeout, ACKRandomFactor and MaxRetransmit), by when a live client has
	// sent its next block or retransmitted its last one; at most ExchangeLifetime.
	Block1Timeout time.Duration
	// MaxBlock1Bytes bounds the memory of all incoming Block1 reassemblies together; a block
	// that would pass it ends its transfer with 5.03. Default 32 MiB.
	MaxBlock1Bytes int
	// SourceRate is how many datagrams per second one source IP address may send on average
	// (a token bucket per address, checked before a datagram is queued). Beyond it datagrams are
	// dropped, except that one refused request per second and source is answered 5.03 with
	// Max-Age. The bound is per IP address, not per port, so that a host cannot escape it by
	// opening sockets; devices behind one NAT share it (see SourceExempt). Default 2000;
	// negative: no limit.
	SourceRate float64
	// SourceBurst is the size of a source's bucket: datagrams it may send at once after a quiet
	// spell. Default 2*SourceRate.
	SourceBurst int
	// SourceExempt lists the source prefixes SourceRate and MaxBlock1PerIP do not apply to: the
	// server's own host, NAT gateways of large fleets. nil means loopback (127.0.0.0/8, ::1); an empty
	// non-nil slice exempts nothing.
	SourceExempt []netip.Prefix
	// TrustedProxies lists the prefixes of UDP load balancers (nginx's stream module) in front
	// of lwota. A balancer opens one upstream socket per device session, so every device behind
	// it has the balancer's address and a port of its own: from these prefixes SourceRate, the
	// DTLS handshake rate and MaxBlock1PerIP count per address and port (one device), not per
	// address, or the whole fleet behind the balancer would share one device's allowance.
	// Empty: none.
	TrustedProxies []netip.Prefix
	// NodeID is the cluster node this endpoint belongs to (cluster.Node.ID, 1..65535), 0 outside
	// a cluster. Behind a balancer every node reaches a device from the same address, and the
	// device's duplicate cache keeps their message ids together: a node's ids to a peer start in
	// a range of its own (one of 16, node ids modulo 16), so that a node taking a device over
	// does not send ids the device answers from its cache (see midTable in exchange.go).
	NodeID uint16
	// MaxSources bounds the per-address buckets kept (SourceRate here, DTLS handshake rates
	// in the DTLS link); beyond it the least recently refreshed half is forgotten. Default 65536
	// (about 4 MiB).
	MaxSources int
}

// LoopbackPrefixes are the default SourceExempt: 127.0.0.0/8 and ::1.
func LoopbackPrefixes() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
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
		MaxBlock1PerPeer: 4,
		MaxBlock1PerIP:   64,
		Block1Timeout:    45 * time.Second,
		MaxBlock1Bytes:   32 << 20,
		SourceRate:       2000,
		SourceExempt:     LoopbackPrefixes(),
		MaxSources:       65536,
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
	if c.MaxBlock1PerPeer <= 0 {
		c.MaxBlock1PerPeer = d.MaxBlock1PerPeer
	}
	if c.MaxBlock1PerIP <= 0 {
		c.MaxBlock1PerIP = d.MaxBlock1PerIP
	}
	if c.Block1Timeout <= 0 { // RFC 7252 §4.8.2 MAX_TRANSMIT_SPAN
		c.Block1Timeout = time.Duration(float64(c.ACKTimeout) * float64(int64(1)<<c.MaxRetransmit-1) * c.ACKRandomFactor)
	}
	c.Block1Timeout = min(c.Block1Timeout, c.ExchangeLifetime)
	if c.MaxBlock1Bytes <= 0 {
		c.MaxBlock1Bytes = d.MaxBlock1Bytes
	}
	if c.SourceRate == 0 {
		c.SourceRate = d.SourceRate
	}
	if c.SourceBurst <= 0 {
		c.SourceBurst = int(max(2*c.SourceRate, 1))
	}
	if c.SourceExempt == nil {
		c.SourceExempt = d.SourceExempt
	}
	if c.MaxSources <= 0 {
		c.MaxSources = d.MaxSources
	}
	return c, nil
}
