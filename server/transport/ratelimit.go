package transport

import (
	"math"
	"net/netip"
	"time"
)

// sourceLimiter is a token bucket per source IP address: a source may send rate datagrams per
// second on average and burst at once. It is not safe for concurrent use: each limiter belongs
// to one goroutine (the DTLS demultiplexer) or is used under one lock (the Endpoint's admitMu,
// which its readers and DTLS sessions take only for admission).
//
// The buckets live in two generations, each a slice of buckets indexed by a map keyed by the
// 16-byte address: no pointers for the garbage collector to scan, and one map lookup per
// datagram. When the current generation holds maxSources/2 addresses it becomes the old one
// and the previous old one is dropped: memory stays bounded by maxSources buckets whatever the
// number of sources, and a source whose bucket was dropped only gets a full bucket again,
// which is what it would have after a quiet spell anyway.
type sourceLimiter struct {
	perNs   float64 // tokens added per nanosecond
	burst   float64
	half    int
	exempt  []netip.Prefix
	proxies []netip.Prefix // Config.TrustedProxies: their sources are keyed by address and port
	cur     bucketGen
	old     bucketGen
}

// sourceKey names a bucket: the 16-byte address, and the port for a trusted proxy's sources
// (0 for every other source, whose ports share the address's bucket).
type sourceKey struct {
	addr [16]byte
	port uint16
}

type bucketGen struct {
	index   map[sourceKey]int32
	buckets []bucket
}

func newBucketGen(size int) bucketGen {
	return bucketGen{index: make(map[sourceKey]int32, size), buckets: make([]bucket, 0, size)}
}

// bucket is one source's state. answered is when a refused datagram of this source was last
// let through to be answered (see allow).
type bucket struct {
	tokens   float64
	last     int64
	answered int64
	exempt   bool
}

// answerEvery is how often a refused source is told so: at most one answer per second.
const answerEvery = int64(time.Second)

// newSourceLimiter returns nil when rate is not positive (no limit). Sources in proxies (see
// Config.TrustedProxies) get a bucket per address and port, as allowFrom explains.
func newSourceLimiter(rate float64, burst, maxSources int, exempt []netip.Prefix, proxies ...netip.Prefix) *sourceLimiter {
	if rate <= 0 {
		return nil
	}
	half := max(maxSources/2, 1)
	return &sourceLimiter{
		perNs:   rate / float64(time.Second),
		burst:   float64(max(burst, 1)),
		half:    half,
		exempt:  exempt,
		proxies: proxies,
		cur:     newBucketGen(min(half, 1024)),
	}
}

// bucket returns addr's bucket, making it (full) when addr is new.
func (l *sourceLimiter) bucket(addr netip.Addr, port uint16, now int64) *bucket {
	k := sourceKey{addr.As16(), port}
	if i, ok := l.cur.index[k]; ok {
		return &l.cur.buckets[i]
	}
	var b bucket
	if i, ok := l.old.index[k]; ok {
		b = l.old.buckets[i]
	} else {
		b = bucket{tokens: l.burst, last: now, answered: now - answerEvery, exempt: l.isExempt(addr)}
	}
	if len(l.cur.buckets) >= l.half {
		l.old, l.cur = l.cur, newBucketGen(l.half)
	}
	l.cur.index[k] = int32(len(l.cur.buckets))
	l.cur.buckets = append(l.cur.buckets, b)
	return &l.cur.buckets[len(l.cur.buckets)-1]
}

// allow takes one token from addr's bucket at now (monotonic nanoseconds). When the bucket is
// empty it reports false, and answer is true at most once per second per source: that
// datagram may be answered with an error (5.03 with Max-Age), the others are dropped silently
// so that a spoofed source cannot turn lwota into a reflector.
func (l *sourceLimiter) allow(addr netip.Addr, now int64) (ok, answer bool) {
	return l.allowKey(addr, 0, now)
}

// allowFrom is allow for the datagram's whole source: a trusted proxy's source is one of the
// devices behind it (a UDP balancer such as nginx opens one upstream socket per device
// session), so its bucket is the address and port's; any other source's is its address's, so
// that a host cannot escape the limit by opening sockets.
func (l *sourceLimiter) allowFrom(from netip.AddrPort, now int64) (ok, answer bool) {
	return l.allowKey(from.Addr(), l.portKey(from), now)
}

// portKey is the port part of from's bucket key: its port behind a trusted proxy, else 0.
func (l *sourceLimiter) portKey(from netip.AddrPort) uint16 {
	if isTrustedProxy(l.proxies, from.Addr()) {
		return from.Port()
	}
	return 0
}

func (l *sourceLimiter) allowKey(addr netip.Addr, port uint16, now int64) (ok, answer bool) {
	b := l.bucket(addr, port, now)
	if b.exempt {
		return true, false
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)*l.perNs)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	if now-b.answered >= answerEvery {
		b.answered = now
		return false, true
	}
	return false, false
}

// retryAfterFrom is how long the source of from (the bucket allowFrom used) must wait for its
// next token, in whole seconds (at least 1): the Max-Age of the 5.03 answer.
func (l *sourceLimiter) retryAfterFrom(from netip.AddrPort) uint32 {
	return l.retryAfterKey(sourceKey{from.Addr().As16(), l.portKey(from)})
}

func (l *sourceLimiter) retryAfterKey(k sourceKey) uint32 {
	i, ok := l.cur.index[k]
	if !ok || l.cur.buckets[i].tokens >= 1 {
		return 1
	}
	secs := math.Ceil((1 - l.cur.buckets[i].tokens) / l.perNs / float64(time.Second))
	return uint32(min(max(secs, 1), 3600))
}

func (l *sourceLimiter) isExempt(addr netip.Addr) bool {
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// sources counts the buckets held (an address moved from the old generation counts twice).
func (l *sourceLimiter) sources() int { return len(l.cur.buckets) + len(l.old.buckets) }

// isTrustedProxy reports whether addr is in proxies (Config.TrustedProxies).
func isTrustedProxy(proxies []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
