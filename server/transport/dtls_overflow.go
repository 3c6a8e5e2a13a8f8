package transport

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Pooled overflow goroutines (issue 16). An inline-safe request that overflows on a record
// goroutine beyond its limit (admitAndHandle, overflowGoroutine: the inline slots, the workers'
// queue and the record goroutines' overflow slots all taken) runs on a goroutine of its own, so
// that a handler waiting on storage never holds up the records behind it. At 1,000 DTLS devices
// pulling firmware that was about a quarter of the blocks, up to ~465 such goroutines at once,
// and each new one cost its creation and then the growth of its stack through the handler's
// call chain (runtime.newproc, morestack, copystack: 2.5-11% of the server's CPU in the profiles
// of that window). Now such a goroutine, once its request is answered, waits up to overflowIdle
// for the next overflowing request before it ends, as the goroutines of fasthttp's worker pool
// do, and the next one is handed to it (a goroutine woken, its stack already grown) instead of
// a new goroutine started. Each request still starts at once on a goroutine nothing else
// holds: what it waits on holds up nobody else. At most overflowPool.max goroutines wait so
// (beyond that an overflowing request gets a goroutine that ends with it, as before), and
// they end with Serve.

// overflowIdle is how long a pooled overflow goroutine waits for the next request before it
// ends: long enough to be reused while a fleet keeps pulling, short enough that a burst's
// goroutines (and their grown stacks) go away soon after it.
const overflowIdle = time.Second

// overflowPool is the Endpoint's pool of overflow goroutines.
type overflowPool struct {
	// jobs is unbuffered: a send succeeds only into the hands of a goroutine waiting for it,
	// so no request ever waits in the pool for a goroutine to become free.
	jobs   chan overflowJob
	max    int32        // pooled goroutines at most: Config.QueueSize
	pooled atomic.Int32 // pooled goroutines now, running or waiting
	mu     sync.Mutex   // guards closed, and wg.Add against stop's wg.Wait
	closed bool
	wg     sync.WaitGroup
}

// overflowJob is an overflowing request on its way to a pooled goroutine.
type overflowJob struct {
	f        frame
	from     netip.AddrPort
	identity string
}

func (p *overflowPool) init(n int) {
	p.jobs = make(chan overflowJob)
	p.max = int32(n)
}

// overflowGo runs f, an inline-safe request from (with identity) that overflowed on a record
// goroutine, on a waiting pooled goroutine, else on a new one. Called only while Serve runs.
func (e *Endpoint) overflowGo(f frame, from netip.AddrPort, identity string) {
	j := overflowJob{f: f, from: from, identity: identity}
	p := &e.ovf
	select {
	case p.jobs <- j:
		return
	default:
	}
	if p.pooled.Add(1) <= p.max {
		p.mu.Lock()
		if !p.closed {
			p.wg.Add(1)
			p.mu.Unlock()
			go e.overflowWorker(*e.inl.ctx.Load(), j)
			return
		}
		p.mu.Unlock()
	}
	p.pooled.Add(-1)
	go e.inlineOverflow(f, from, identity)
}

// overflowWorker runs j, then each overflowing request handed to it, until none came for
// overflowIdle or ctx (Serve's) ends.
func (e *Endpoint) overflowWorker(ctx context.Context, j overflowJob) {
	p := &e.ovf
	defer p.wg.Done()
	defer p.pooled.Add(-1)
	idle := time.NewTimer(overflowIdle)
	defer idle.Stop()
	for {
		e.inlineOverflow(j.f, j.from, j.identity)
		j = overflowJob{} // nothing of the answered request stays reachable while it waits
		idle.Reset(overflowIdle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// stop waits for the pool's goroutines to end; Serve calls it once its context has ended, so
// each ends when its request is answered. An overflowing request after that gets a goroutine
// that ends with it.
func (p *overflowPool) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}
