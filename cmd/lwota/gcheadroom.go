package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
)

// The GC headroom tuner (--gc-headroom): the Go runtime starts the next collection when the heap
// has grown by GOGC percent of the live heap. With a live heap of a few MB, as a node serving a
// handshake storm to a small fleet has, that is a collection every few MB allocated, and the
// collector takes a third of the CPU of a DTLS handshake. A large fleet's live heap (hundreds of
// MB) makes the same GOGC=100 cheap. So lwota keeps the next GC target at
//
//	max(live × (1 + GOGC/100), live + headroom)
//
// by raising the GC percent while the live heap is small. It costs one tiny allocation and one
// runtime/metrics read per collection: a sentinel object whose finalizer runs after each GC, reads
// the live heap, sets the percent and arms a new sentinel. No goroutine of its own, nothing per
// allocation. The runtime's memory limit (GOMEMLIMIT) still applies: near it the runtime collects
// whatever the percent says.

// defaultGCHeadroom is --gc-headroom's default: with a live heap of 5 MB the process collects
// about 13× less often than with GOGC=100; from 64 MiB of live heap on it is GOGC=100.
const defaultGCHeadroom = 64 << 20

// gcBasePercent is the GC percent the tuner never goes below: Go's default GOGC.
const gcBasePercent = 100

// gcMaxPercent caps the percent a tiny live heap would ask for: the target stays within 101× the
// live heap, under the headroom only when the live heap is below 1% of it.
const gcMaxPercent = 10000

// gcPercentFor is the GC percent that puts the next collection at max(live × (1 + base/100),
// live + headroom), capped at gcMaxPercent.
//
// Before the first collection the live heap is unknown (0): base, so that the first collection
// comes at the runtime's 4 MB minimum rather than at gcMaxPercent of it (400 MB).
func gcPercentFor(live, headroom uint64, base int) int {
	if live == 0 {
		return base
	}
	p := headroom / live * 100
	if headroom/live < gcMaxPercent/100 { // exact enough, and no overflow for huge headrooms
		p = headroom * 100 / live
	}
	switch {
	case p <= uint64(base):
		return base
	case p >= gcMaxPercent:
		return gcMaxPercent
	}
	return int(p)
}

// gcPercentChanged says whether the percent moved by more than 5% of the current one: small moves
// are not worth resetting the runtime's pacing for.
func gcPercentChanged(cur, next int) bool {
	d := next - cur
	if d < 0 {
		d = -d
	}
	return d*20 > cur
}

// gcHeadroom is a running tuner; stop ends it and puts back the percent it found.
type gcHeadroom struct {
	headroom uint64
	base     int
	samples  []metrics.Sample

	mu      sync.Mutex
	current int
	stopped bool
}

// gcSentinel is the object whose finalizer marks the end of a collection. It holds a pointer, so
// the runtime's tiny allocator does not batch it with other small objects (which would keep it
// alive as long as they are).
type gcSentinel struct{ t *gcHeadroom }

// startGCHeadroom starts the tuner for this process until ctx ends. It does nothing (and says
// so with false) when headroom is 0 or the operator set GOGC: an explicit GOGC is the operator's
// choice to keep.
func startGCHeadroom(ctx context.Context, headroom uint64, getenv func(string) string) bool {
	if headroom == 0 || getenv("GOGC") != "" {
		return false
	}
	t := &gcHeadroom{
		headroom: headroom,
		base:     gcBasePercent,
		samples:  []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
	}
	t.current = debug.SetGCPercent(gcBasePercent)
	debug.SetGCPercent(t.current)
	t.tune()
	t.arm()
	context.AfterFunc(ctx, t.stop)
	return true
}

func (t *gcHeadroom) arm() {
	runtime.SetFinalizer(&gcSentinel{t}, func(s *gcSentinel) {
		if s.t.tune() {
			s.t.arm()
		}
	})
}

// tune sets the percent for the live heap of the last collection; false once stopped.
func (t *gcHeadroom) tune() bool {
	metrics.Read(t.samples)
	live := uint64(0)
	if t.samples[0].Value.Kind() == metrics.KindUint64 {
		live = t.samples[0].Value.Uint64()
	}
	next := gcPercentFor(live, t.headroom, t.base)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if gcPercentChanged(t.current, next) {
		debug.SetGCPercent(next)
		t.current = next
	}
	return true
}

func (t *gcHeadroom) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.current = t.base
	debug.SetGCPercent(t.base)
}

// byteSizeFlag is a flag of bytes with an optional binary unit: 64MiB, 512KiB, 1GiB, 4096 or 0.
type byteSizeFlag struct{ n *uint64 }

func (f byteSizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	return formatByteSize(*f.n)
}

func (f byteSizeFlag) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func parseByteSize(s string) (uint64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range byteUnits {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(v), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > (1<<63)>>shift {
		return 0, fmt.Errorf("%q: want bytes with an optional unit B, KiB, MiB or GiB, such as 64MiB (0: off)", s)
	}
	return n << shift, nil
}

func formatByteSize(n uint64) string {
	for _, u := range byteUnits {
		if n != 0 && u.shift != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}
