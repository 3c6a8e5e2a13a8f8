package firmware

import (
	"crypto/rand"
	"sync"
	"time"
)

// idSource makes IDs of 26 characters, as ULIDs: 48 bits of milliseconds then 80 random bits, in
// Crockford's base 32. IDs from one source only grow (within a millisecond the random part is
// incremented), so ordering by ID is upload order and cursor paging never skips a newer image.
type idSource struct {
	mu   sync.Mutex
	ms   uint64
	rand [10]byte
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func (s *idSource) next(now time.Time) string {
	ms := uint64(max(now.UnixMilli(), 0)) & (1<<48 - 1)
	s.mu.Lock()
	if ms > s.ms {
		s.ms = ms
		_, _ = rand.Read(s.rand[:]) // never fails (crypto/rand panics instead)
	} else if !increment(&s.rand) { // same millisecond, or the clock went back: count up
		s.ms++ // 2^80 IDs in one millisecond: borrow the next one
		_, _ = rand.Read(s.rand[:])
	}
	ms = s.ms
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:], s.rand[:])
	s.mu.Unlock()
	return encode128(b)
}

// increment adds one to the big-endian r and reports false when it wrapped around.
func increment(r *[10]byte) bool {
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return true
		}
	}
	return false
}

// encode128 writes 128 bits as 26 base-32 digits, most significant first (the first digit holds
// the top 3 bits).
func encode128(b [16]byte) string {
	var out [26]byte
	var acc uint32
	bits := 2 // 26*5 = 130: two leading zero bits
	n := 0
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[n] = crockford[(acc>>bits)&31]
			n++
		}
	}
	return string(out[:])
}
