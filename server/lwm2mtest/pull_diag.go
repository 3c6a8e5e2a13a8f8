package lwm2mtest

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// Why a pull run retransmitted (issue 16): lwota bench pull at 1,000 devices reported from 0 to
// 1,000 block retransmissions from one run to the next, and a count alone cannot tell a server
// that drops some devices' requests again and again (fewest blocks per device far below the
// median), the burst of every device's first request at the start (first-request
// retransmissions, the longest first answer), and a machine too loaded to run the server or the
// devices for a second (the longest time no device got an answer; how late the devices' own
// ticker ran).

// pullDiag watches a run's progress on a 10 ms ticker until its context ends.
type pullDiag struct {
	done          chan struct{}
	stalled, late time.Duration // written by the watcher until done is closed
}

// pullDiagTick is the watcher's period: finer than any retransmission timeout, coarse enough to
// cost the devices' process nothing measurable (100 wake-ups a second).
const pullDiagTick = 10 * time.Millisecond

// watchPull starts watching blocks, the run's answered blocks, until ctx ends.
func watchPull(ctx context.Context, blocks *atomic.Int64) *pullDiag {
	d := &pullDiag{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		t := time.NewTicker(pullDiagTick)
		defer t.Stop()
		last, lastT, prev := blocks.Load(), time.Now(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				now := time.Now() // not the tick's time: the ticker's channel keeps the first late tick
				d.late = max(d.late, now.Sub(prev)-pullDiagTick)
				prev = now
				if n := blocks.Load(); n != last {
					last, lastT = n, now
				} else {
					d.stalled = max(d.stalled, now.Sub(lastT))
				}
			}
		}
	}()
	return d
}

// report waits for the watcher to end (the run's context has) and fills rep's diagnosis from
// it and from devs, which have stopped.
func (d *pullDiag) report(rep *PullReport, devs []*pullDevice) {
	<-d.done
	rep.Stalled, rep.Late = d.stalled, d.late
	perDevice := make([]int64, len(devs))
	for i, dev := range devs {
		perDevice[i] = dev.nBlocks
		rep.FirstRetransmits += dev.nFirstRetransmits
		rep.FirstAnswerMax = max(rep.FirstAnswerMax, dev.firstAnswer)
		if dev.firstAnswer == 0 && dev.nRequests > 0 {
			rep.FirstAnswerMax = max(rep.FirstAnswerMax, rep.Elapsed) // never answered: it waited the whole run
		}
	}
	if len(perDevice) > 0 {
		slices.Sort(perDevice)
		rep.BlocksLeast, rep.BlocksMedian = perDevice[0], perDevice[len(perDevice)/2]
	}
}
