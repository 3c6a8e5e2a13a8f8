package main

import (
	"context"
	"slices"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// The pull benchmark compares lwota's Block2 rate with a raw UDP echo at the same concurrency.
// On a shared machine the load from outside swings by a third within a minute: an echo measured
// in a window of its own and a pull in the next one compared two different machines (the ratio
// of one build came out 0.51 to 0.63 from run to run). So the two alternate in short slots,
// echo then pull, then pull then echo (ABBA: a load that rises or falls steadily hits both
// alike), and the ratio is the median of the slots' own ratios: a slot that a burst from
// outside hit moves it little.

// pullRun is what one device count's interleaved run measured.
type pullRun struct {
	// pull sums the slots' counts; its Windows are the slots' blocks/s in order (Decline is how
	// flat the pull stayed over the whole duration) and its BlocksPerSec their median.
	pull    lwm2mtest.PullReport
	echo    float64       // median of the slots' echo round trips/s
	ratios  []float64     // per slot: pull blocks/s ÷ echo round trips/s of the same slot
	pullCPU time.Duration // both sides
	srvCPU  time.Duration // the server's part of pullCPU
	echoCPU time.Duration // both sides
	echoSrv time.Duration // the echo server's part of echoCPU
	echoOps float64       // echo round trips over all slots
}

// slotsOf is how many echo and pull slots of pullWindow(d) each a run of d has.
func slotsOf(d time.Duration) int { return max(int(d/pullWindow(d)), 1) }

// pullSlotFunc pulls for slot, calling cpu.start and cpu.end around the pull alone.
type pullSlotFunc func(ctx context.Context, slot time.Duration, cpu *pullCPU) (lwm2mtest.PullReport, error)

// echoSlotFunc runs the UDP echo with n clients for slot, calling cpu.start and cpu.end around
// the round trips alone, and returns its round trips/s.
type echoSlotFunc func(ctx context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error)

// interleavePull runs the echo and pull at n devices for d each, alternating in slots. The
// echo's clients run in a child process against the echo server at echoAddr, which runs in
// this one (lwm2mtest.EchoServer), as the pull's devices run against lwota's server: the two
// compare alike, and cpu.clients is the child's CPU for both.
func interleavePull(ctx context.Context, n int, d time.Duration, echoAddr string, pull pullSlotFunc) (pullRun, error) {
	echo := func(ctx context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error) {
		return pullClients{Echo: echoAddr, Devices: n, Duration: slot, Window: slot}.echo(ctx, cpu) // bench_pull_clients.go
	}
	return interleave(ctx, n, d, echo, pull)
}

func interleave(ctx context.Context, n int, d time.Duration, echo echoSlotFunc, pull pullSlotFunc) (pullRun, error) {
	slot, k := pullWindow(d), slotsOf(d)
	var (
		run     pullRun
		echoes  []float64
		rates   []float64
		medians []float64 // the slots' median blocks per device
	)
	runEcho := func() (float64, error) {
		var cpu pullCPU
		r, err := echo(ctx, n, slot, &cpu)
		run.echoCPU += cpu.used()
		run.echoSrv += cpu.server()
		run.echoOps += r * slot.Seconds()
		return r, err
	}
	runPull := func() (lwm2mtest.PullReport, error) {
		var cpu pullCPU
		rep, err := pull(ctx, slot, &cpu)
		run.pullCPU += cpu.used()
		run.srvCPU += cpu.server()
		return rep, err
	}
	for i := range k {
		var (
			e   float64
			rep lwm2mtest.PullReport
			err error
		)
		if i%2 == 0 {
			if e, err = runEcho(); err == nil {
				rep, err = runPull()
			}
		} else {
			if rep, err = runPull(); err == nil {
				e, err = runEcho()
			}
		}
		if err != nil {
			return run, err
		}
		echoes, rates = append(echoes, e), append(rates, rep.BlocksPerSec)
		ratio := 0.0
		if e > 0 {
			ratio = rep.BlocksPerSec / e
		}
		run.ratios = append(run.ratios, ratio)
		p := &run.pull
		p.Devices = rep.Devices
		p.Elapsed += rep.Elapsed
		p.Blocks += rep.Blocks
		p.Bytes += rep.Bytes
		p.Images += rep.Images
		p.Retransmits += rep.Retransmits
		p.FirstRetransmits += rep.FirstRetransmits
		p.FirstAnswerMax = max(p.FirstAnswerMax, rep.FirstAnswerMax)
		p.Stalled, p.Late = max(p.Stalled, rep.Stalled), max(p.Late, rep.Late)
		if i == 0 || rep.BlocksLeast < p.BlocksLeast {
			p.BlocksLeast = rep.BlocksLeast
		}
		medians = append(medians, float64(rep.BlocksMedian))
		p.Errors += rep.Errors
		if p.FirstError == "" {
			p.FirstError = rep.FirstError
		}
	}
	run.pull.Windows = rates
	run.pull.BlocksMedian = int64(median(medians)) // of the slots' medians; BlocksLeast: the least of any slot
	run.pull.BlocksPerSec = median(rates)
	run.echo = median(echoes)
	return run, nil
}

// ratio is the median of the slots' ratios of pull blocks/s to echo round trips/s.
func (r pullRun) ratio() float64 { return median(r.ratios) }

// pullCPUPerOp is the process CPU per block pulled, in µs.
func (r pullRun) pullCPUPerOp() float64 {
	if r.pull.Blocks == 0 {
		return 0
	}
	return float64(r.pullCPU.Microseconds()) / float64(r.pull.Blocks)
}

// serverCPUPerOp is the server's CPU per block pulled, in µs.
func (r pullRun) serverCPUPerOp() float64 {
	if r.pull.Blocks == 0 {
		return 0
	}
	return float64(r.srvCPU.Microseconds()) / float64(r.pull.Blocks)
}

// echoCPUPerOp and echoServerCPUPerOp are the echo's CPU per round trip, both sides and the
// server's, in µs.
func (r pullRun) echoCPUPerOp() float64       { return perOp(r.echoCPU, r.echoOps) }
func (r pullRun) echoServerCPUPerOp() float64 { return perOp(r.echoSrv, r.echoOps) }

func perOp(cpu time.Duration, ops float64) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / ops
}

// cpuRatio is the echo's CPU per round trip divided by the pull's CPU per block: the ratio the
// two rates would have on a machine that gave both the same CPU. Both count their server's
// process and their clients' child process alike.
func (r pullRun) cpuRatio() float64 {
	if r.echoOps <= 0 || r.pull.Blocks == 0 || r.pullCPU <= 0 {
		return 0
	}
	echoPer := float64(r.echoCPU) / r.echoOps
	pullPer := float64(r.pullCPU) / float64(r.pull.Blocks)
	return echoPer / pullPer
}

// median is the middle value of v (the mean of the two middle ones for an even count), 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
