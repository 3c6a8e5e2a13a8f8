package plan

import (
	"math"
	"time"
)

// Unlimited is the Budget of a pacing without any limit.
const Unlimited = math.MaxInt

// rateWindow is the span MaxStartsPerMinute and the ramp count starts over.
const rateWindow = time.Minute

// Pacer decides how many updates may start now. It keeps the start times of the last minute
// (a sliding-window log, at most one entry per allowed start), so that no 60-second span ever
// holds more starts than allowed, which a token bucket would allow at its refill edges. It is not
// safe for concurrent use: one campaign's driver owns it.
type Pacer struct {
	cfg    Pacing
	now    func() time.Time
	starts []time.Time // within the last rateWindow, oldest first
}

// NewPacer makes a pacer reading the time from now. recent are the starts of the campaign's
// last minute (from the store), so that a restarted lwota does not start a second full minute's
// worth at once.
func NewPacer(cfg Pacing, now func() time.Time, recent []time.Time) *Pacer {
	p := &Pacer{cfg: cfg, now: now}
	for _, t := range recent {
		p.record(t)
	}
	return p
}

// Load is what is running when the pacer is asked.
type Load struct {
	InFlight        int            // updates in progress
	InFlightByLabel map[string]int // ... per value of Pacing.PerLabelCap.Key
	Successes       int            // updates of the campaign that succeeded, for the ramp
}

// Budget is what may start now.
type Budget struct {
	// N updates may start (Unlimited when nothing limits). Take spends it device by device.
	N int
	// Rate is the starts-per-minute limit in force (the ramp's, capped), 0 when there is none.
	Rate int
	// RetryAt is when the rate limit frees the next start, when it is what holds N at 0; zero
	// when only concurrency holds it (a finishing update frees a slot).
	RetryAt time.Time

	capKey  string
	capMax  int
	byLabel map[string]int
}

// Take spends one start on a device with these labels, if the budget and the device's label
// cap allow it. Devices without the capped label are not capped: they have no cell to crowd.
func (b *Budget) Take(labels map[string]string) bool {
	if b.N <= 0 {
		return false
	}
	if b.capMax > 0 {
		if v, ok := labels[b.capKey]; ok {
			if b.byLabel[v] >= b.capMax {
				return false
			}
			b.byLabel[v]++
		}
	}
	if b.N != Unlimited {
		b.N--
	}
	return true
}

// Budget answers how many updates may start now: the least of MaxConcurrent minus those in
// flight and the rate (MaxStartsPerMinute, or the ramp's rate capped by it) minus the starts of
// the last 60 s. Report the starts made with Started.
func (p *Pacer) Budget(l Load) Budget {
	now := p.now()
	p.expire(now)
	b := Budget{N: Unlimited}
	if c := p.cfg.MaxConcurrent; c > 0 {
		b.N = max(c-l.InFlight, 0)
	}
	if rate := p.rate(l.Successes); rate > 0 {
		b.Rate = rate
		free := max(rate-len(p.starts), 0)
		if free == 0 && b.N > 0 {
			// The oldest start that must leave the window for one more to fit.
			b.RetryAt = p.starts[len(p.starts)-rate].Add(rateWindow)
		}
		b.N = min(b.N, free)
	}
	if c := p.cfg.PerLabelCap; c.Max > 0 {
		b.capKey, b.capMax = c.Key, c.Max
		b.byLabel = make(map[string]int, len(l.InFlightByLabel))
		for v, n := range l.InFlightByLabel {
			b.byLabel[v] = n
		}
	}
	return b
}

// Started records n starts made now.
func (p *Pacer) Started(n int) {
	now := p.now()
	for range n {
		p.record(now)
	}
}

// rate is the starts-per-minute limit for this many successes, 0 for none. The ramp grows in
// steps of Every successes and never goes below 1 start per minute nor above MaxStartsPerMinute.
func (p *Pacer) rate(successes int) int {
	limit := p.cfg.MaxStartsPerMinute
	r := p.cfg.Ramp
	if r.Base <= 0 || r.Every < 1 {
		return limit
	}
	f := r.Base * math.Pow(max(r.Factor, 1), float64(max(successes, 0)/r.Every))
	if limit > 0 && f >= float64(limit) {
		return limit
	}
	if f >= float64(math.MaxInt32) { // no cap and the ramp has outgrown any fleet
		return 0
	}
	return max(int(f), 1)
}

func (p *Pacer) record(t time.Time) {
	p.starts = append(p.starts, t)
	// Keep the log ordered even if recent came unsorted: insertion from the back is cheap.
	for i := len(p.starts) - 1; i > 0 && p.starts[i].Before(p.starts[i-1]); i-- {
		p.starts[i], p.starts[i-1] = p.starts[i-1], p.starts[i]
	}
}

// expire drops the starts that left the window (now-60s, now].
func (p *Pacer) expire(now time.Time) {
	cut := now.Add(-rateWindow)
	i := 0
	for i < len(p.starts) && !p.starts[i].After(cut) {
		i++
	}
	p.starts = append(p.starts[:0], p.starts[i:]...)
}
