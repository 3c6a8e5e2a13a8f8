package fwupdate

import (
	"sync/atomic"
	"time"
)

// Pull progress. The transfer server tells Progress about every block it serves, so the
// bookkeeping per block is a map lookup under the driver's read lock and a few atomics: no lock of
// the run, no store write, no allocation. The run's loop stores the furthest byte at most
// every ProgressInterval.

// served follows how far a pull has been served in the current attempt.
type served struct {
	bytes  atomic.Int64 // furthest byte served
	nextAt atomic.Int64 // unix nanoseconds before which no store is asked for
}

// report raises the furthest byte to n and tells whether a store is due at now: the first
// new byte is stored at once, later ones once every interval.
func (s *served) report(n int64, now time.Time, every time.Duration) bool {
	for {
		cur := s.bytes.Load()
		if n <= cur {
			return false // a block served again: nothing new
		}
		if s.bytes.CompareAndSwap(cur, n) {
			break
		}
	}
	t, next := now.UnixNano(), s.nextAt.Load()
	return t >= next && s.nextAt.CompareAndSwap(next, t+int64(every))
}

// reset starts a new attempt: what the previous one served says nothing about this one.
func (s *served) reset() {
	s.bytes.Store(0)
	s.nextAt.Store(0)
}

// Progress hears that the transfer server served job jobID's image up to byte n (the end of a
// block). The furthest byte is kept in memory, where Job and Jobs show it at once, and stored
// at most every ProgressInterval. It is called for every block, so it never blocks; a job this
// process does not drive is ignored.
func (d *Driver) Progress(jobID string, n int64) {
	d.mu.RLock()
	r := d.runs[jobID]
	d.mu.RUnlock()
	if r == nil || !r.served.report(n, d.now(), d.cfg.ProgressInterval) {
		return
	}
	select {
	case r.saveC <- struct{}{}:
	default: // a store is already asked for
	}
}

// saveServed stores how far the device's pull has got, when it got further than stored. It
// runs on the loop's goroutine, like every other store of the job.
func (r *run) saveServed() {
	j := r.current()
	n := min(r.served.bytes.Load(), j.ImageSize)
	if j.State != StateDelivering || j.Delivery == DeliveryPush || n <= j.BytesDelivered {
		return
	}
	r.progress(j, func(x *Job) { x.BytesDelivered = max(x.BytesDelivered, n) })
}

// withServed shows the bytes served so far in a stored job that this process is delivering by
// pull: the store lags by up to ProgressInterval.
func (d *Driver) withServed(j *Job) {
	if j.State != StateDelivering || j.Delivery == DeliveryPush {
		return
	}
	d.mu.Lock()
	r := d.runs[j.ID]
	d.mu.Unlock()
	if r == nil {
		return
	}
	if n := min(r.served.bytes.Load(), j.ImageSize); n > j.BytesDelivered {
		j.BytesDelivered = n
	}
}
