package transport

import (
	"encoding/binary"
	"net/netip"
	"sync"
)

// dedup remembers, per (peer address, message id), the bytes lwota answered with, so that a
// retransmitted message gets the very same answer without the handler running again
// (RFC 7252 §4.5). It holds:
//
//   - responses to non-idempotent requests (see cachesResponse), and
//   - the empty ACK or RST lwota sent for a confirmable response or notification.
//
// It keeps no per-peer session: an entry is a 20-byte key and a 12-byte reference into an
// append-only arena of answer bytes. Entries are grouped in time generations; a generation
// spans ExchangeLifetime/dedupSpans and is dropped whole once it is older than
// ExchangeLifetime, so an entry lives between ExchangeLifetime and
// ExchangeLifetime*(1+1/dedupSpans). Nothing is scanned per datagram.
type dedup struct {
	span   int64 // nanoseconds per generation
	shards [dedupShards]dedupShard
}

const (
	dedupShards = 32
	dedupSpans  = 4              // generations per ExchangeLifetime
	dedupGens   = dedupSpans + 1 // generations kept: the current one and dedupSpans older
	dedupChunk  = 32 << 10       // arena chunk size
	pendingLen  = ^uint32(0)     // dedupRef.n of an exchange still being handled
)

type dedupKey struct {
	ip   [16]byte
	port uint16
	mid  uint16
}

func makeDedupKey(ap netip.AddrPort, mid uint16) dedupKey {
	return dedupKey{ip: ap.Addr().As16(), port: ap.Port(), mid: mid}
}

type dedupRef struct {
	chunk, off, n uint32
}

type dedupGen struct {
	entries map[dedupKey]dedupRef
	chunks  [][]byte
}

type dedupShard struct {
	mu    sync.Mutex
	start int64                // when gens[0] began
	gens  [dedupGens]*dedupGen // gens[0] is the newest
}

type dedupState int

const (
	dedupNew     dedupState = iota // first sighting: a pending entry was recorded
	dedupPending                   // a copy is still being handled
	dedupDone                      // answered already: the bytes are returned
)

func newDedup(lifetime int64) *dedup {
	d := &dedup{span: max(lifetime/dedupSpans, 1)}
	return d
}

func (d *dedup) shard(k dedupKey) *dedupShard {
	h := (binary.LittleEndian.Uint64(k.ip[8:]) ^ uint64(k.port)<<16 ^ uint64(k.mid)) * 0x9E3779B97F4A7C15
	return &d.shards[h>>(64-5)]
}

// rotate drops generations older than the lifetime. Called with s.mu held.
func (s *dedupShard) rotate(now, span int64) {
	if s.gens[0] == nil {
		s.start = now
		s.gens[0] = &dedupGen{entries: make(map[dedupKey]dedupRef)}
		return
	}
	k := (now - s.start) / span
	if k <= 0 {
		return
	}
	if k > dedupGens {
		k = dedupGens
	}
	copy(s.gens[k:], s.gens[:dedupGens-k])
	for i := range k {
		s.gens[i] = nil
	}
	s.gens[0] = &dedupGen{entries: make(map[dedupKey]dedupRef)}
	s.start += ((now - s.start) / span) * span
}

func (s *dedupShard) find(k dedupKey) (*dedupGen, dedupRef, bool) {
	for _, g := range s.gens {
		if g == nil {
			continue
		}
		if r, ok := g.entries[k]; ok {
			return g, r, true
		}
	}
	return nil, dedupRef{}, false
}

// begin looks k up. On a first sighting it records k as pending and returns dedupNew; the
// caller must then call finish. The returned bytes of dedupDone are read-only.
func (d *dedup) begin(k dedupKey, now int64) (dedupState, []byte) {
	s := d.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate(now, d.span)
	if g, r, ok := s.find(k); ok {
		if r.n == pendingLen {
			return dedupPending, nil
		}
		return dedupDone, g.bytes(r)
	}
	s.gens[0].entries[k] = dedupRef{n: pendingLen}
	return dedupNew, nil
}

// finish records the answer to k (nil: nothing was sent, duplicates are dropped).
func (d *dedup) finish(k dedupKey, answer []byte, now int64) {
	s := d.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate(now, d.span)
	g, _, ok := s.find(k)
	if !ok { // expired while being handled: keep it from now on
		g = s.gens[0]
	}
	g.entries[k] = g.store(answer)
}

func (g *dedupGen) store(b []byte) dedupRef {
	if len(b) == 0 {
		return dedupRef{}
	}
	if len(b) > dedupChunk/4 { // large answers get a chunk of their own
		g.chunks = append(g.chunks, append([]byte(nil), b...))
		return dedupRef{chunk: uint32(len(g.chunks) - 1), n: uint32(len(b))}
	}
	last := len(g.chunks) - 1
	if last < 0 || cap(g.chunks[last])-len(g.chunks[last]) < len(b) {
		size := 1024 // chunks grow from 1 KiB to dedupChunk, so a quiet shard stays small
		if last >= 0 {
			size = min(max(2*cap(g.chunks[last]), size), dedupChunk)
		}
		g.chunks = append(g.chunks, make([]byte, 0, max(size, len(b))))
		last++
	}
	c := g.chunks[last]
	off := len(c)
	g.chunks[last] = append(c, b...)
	return dedupRef{chunk: uint32(last), off: uint32(off), n: uint32(len(b))}
}

func (g *dedupGen) bytes(r dedupRef) []byte {
	if r.n == 0 {
		return nil
	}
	return g.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

// sweep rotates every shard, releasing expired generations of idle shards.
func (d *dedup) sweep(now int64) {
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		if s.gens[0] != nil {
			s.rotate(now, d.span)
		}
		s.mu.Unlock()
	}
}

// len counts the entries held.
func (d *dedup) len() int {
	n := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		for _, g := range s.gens {
			if g != nil {
				n += len(g.entries)
			}
		}
		s.mu.Unlock()
	}
	return n
}

// cachesResponse reports whether the response to request m is kept for duplicates. RFC 7252
// §4.5 lets a server re-process a duplicate of an idempotent request instead of keeping state,
// so lwota caches for methods that are not idempotent: POST, PATCH (RFC 8132) and methods it
// does not know. GET, PUT, DELETE and also FETCH (safe and idempotent) and iPATCH (idempotent)
// are re-processed (RFC 8132 §2, §3), except a block of a Block1 transfer: it moves the
// transfer's reassembly on, so a copy re-processed would find the transfer past it (or done)
// and be answered 4.08, or restart it (RFC 7959 §2.5).
func cachesResponse(m *Message) bool {
	if m.Block1.Set {
		return true
	}
	switch m.Code {
	case GET, PUT, DELETE, FETCH, IPATCH:
		return false
	}
	return true
}
