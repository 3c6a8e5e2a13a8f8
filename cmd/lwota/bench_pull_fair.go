package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// The pull benchmark compares lwota's Block2 rate with a raw UDP echo at the same concurrency,
// and its DTLS rate with its plain CoAP rate (issue 16). On a shared machine the load from
// outside swings by a third within a minute: an echo measured in a window of its own and a pull
// in the next one compared two different machines (the ratio of one build came out 0.51 to 0.63
// from run to run), and so did a plain CoAP run followed by a DTLS run (psk-ccm8 at 1,000
// devices 0.58 to 0.65 in three quiet runs). So every figure is measured in short rounds, and
// each round is paired with one of the other kind right beside it in time: a DTLS round with a
// plain CoAP round, that plain round with an echo round. The pairs take turns at which goes
// first (pairOrder, as the registration benchmark's do: a load that rises or falls steadily hits
// both alike), and a ratio is the median of its pairs' ratios (pairRatios): a round that a burst
// from outside hit moves it little. A plain round is shared by one DTLS round and one echo
// round, so plain and echo each run as long as all the DTLS suites together.

// pullRoundKind is what a round runs.
type pullRoundKind int

const (
	roundEcho pullRoundKind = iota
	roundPlain
	roundDTLS
)

// pullRound is one round of a device count's schedule.
type pullRound struct {
	Kind  pullRoundKind
	Suite int // roundDTLS: the suite's index
	// Plain is the index in the schedule of the plain round an echo or DTLS round is paired
	// with, always a neighbour; -1 for a plain round.
	Plain int
}

// pullSchedule is the order of one device count's rounds: rounds pairs of echo and plain CoAP
// (echo first, then plain first, ...) without DTLS; with suites, rounds DTLS rounds of each
// suite, the suites in pairOrder, each with a plain round and that plain round with an echo
// round: DTLS plain echo, echo plain DTLS, DTLS plain echo, ... so that every suite and the echo
// take turns at going first.
func pullSchedule(rounds, suites int) []pullRound {
	var s []pullRound
	add := func(k pullRoundKind, suite int) int {
		s = append(s, pullRound{Kind: k, Suite: suite, Plain: -1})
		return len(s) - 1
	}
	pair := func(i, plain int) { s[i].Plain = plain }
	if suites == 0 {
		for r := range rounds {
			if r%2 == 0 {
				e := add(roundEcho, 0)
				pair(e, add(roundPlain, 0))
			} else {
				p := add(roundPlain, 0)
				pair(add(roundEcho, 0), p)
			}
		}
		return s
	}
	for k, suite := range pairOrder(rounds, suites) {
		if k%2 == 0 {
			d := add(roundDTLS, suite)
			p := add(roundPlain, 0)
			pair(d, p)
			pair(add(roundEcho, 0), p)
		} else {
			e := add(roundEcho, 0)
			p := add(roundPlain, 0)
			pair(e, p)
			pair(add(roundDTLS, suite), p)
		}
	}
	return s
}

// pullSeries is the rounds of one kind at one device count: plain CoAP, or DTLS with one
// suite.
type pullSeries struct {
	// rep sums the rounds' counts; its Windows are the rounds' blocks/s in order (Decline is how
	// flat the pull stayed over all of them) and its BlocksPerSec their median.
	rep     lwm2mtest.PullReport
	medians []float64     // the rounds' median blocks per device
	cpu     time.Duration // both sides, over every round
	srv     time.Duration // the server's part of cpu
	// paired is, per round of a DTLS series, the blocks/s of the plain round beside it.
	paired []float64
	// cpus is every round's CPU per block (both sides, µs), pairedCPU the same of the plain
	// round beside each (DTLS series).
	cpus, pairedCPU []float64
	// rssStart and rssEnd are this process's RSS before the series' first round and after its
	// last.
	rssStart, rssEnd int64
}

// add counts one round's report into s.
func (s *pullSeries) add(rep lwm2mtest.PullReport, cpu *pullCPU) {
	s.cpu += cpu.used()
	s.srv += cpu.server()
	p := &s.rep
	if len(s.rep.Windows) == 0 || rep.BlocksLeast < p.BlocksLeast {
		p.BlocksLeast = rep.BlocksLeast
	}
	p.Windows = append(p.Windows, rep.BlocksPerSec)
	p.Devices = rep.Devices
	p.Elapsed += rep.Elapsed
	p.Blocks += rep.Blocks
	p.Bytes += rep.Bytes
	p.Images += rep.Images
	p.Retransmits += rep.Retransmits
	p.FirstRetransmits += rep.FirstRetransmits
	p.FirstAnswerMax = max(p.FirstAnswerMax, rep.FirstAnswerMax)
	p.Stalled, p.Late = max(p.Stalled, rep.Stalled), max(p.Late, rep.Late)
	p.Errors += rep.Errors
	if p.FirstError == "" {
		p.FirstError = rep.FirstError
	}
	s.medians = append(s.medians, float64(rep.BlocksMedian))
	p.BlocksMedian = int64(median(s.medians)) // of the rounds' medians; BlocksLeast: the least of any round
	p.BlocksPerSec = median(p.Windows)
}

// cpuPerBlock is the CPU per block pulled, both sides and the server's, in µs.
func (s *pullSeries) cpuPerBlock() (total, server float64) {
	return perOp(s.cpu, float64(s.rep.Blocks)), perOp(s.srv, float64(s.rep.Blocks))
}

// pullRun is what one device count's rounds measured.
type pullRun struct {
	// pull is the plain CoAP rounds, each paired with an echo round (not with a DTLS one).
	pull pullSeries
	dtls []pullSeries // per suite
	echo float64      // median of the echo rounds' round trips/s
	// echoes is the echo rounds' round trips/s in order, plains the blocks/s of the plain round
	// beside each, and ratios the pairs' ratios plains[i]/echoes[i]; echoCPUs and plainCPUs are
	// their CPU per round trip and per block (both sides, µs).
	echoes, plains, ratios []float64
	echoCPUs, plainCPUs    []float64
	echoCPU                time.Duration // both sides
	echoSrv                time.Duration // the echo server's part of echoCPU
	echoOps                float64       // echo round trips over all rounds
}

// pullRoundFunc runs one plain or DTLS round (r) for slot, calling cpu.start and cpu.end
// around the pull alone; first is set for the first round of its series.
type pullRoundFunc func(ctx context.Context, r pullRound, slot time.Duration, first bool, cpu *pullCPU) (lwm2mtest.PullReport, error)

// echoRoundFunc runs the UDP echo with n clients for slot, calling cpu.start and cpu.end around
// the round trips alone, and returns its round trips/s.
type echoRoundFunc func(ctx context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error)

// interleavePull runs n devices' pullSchedule(rounds, suites): rounds of d/rounds each. The
// echo's clients run in a child process against the echo server at echoAddr, which runs in
// this one (lwm2mtest.EchoServer), as the pull's devices run against lwota's server: the two
// compare alike, and cpu.clients is the child's CPU for both.
func interleavePull(ctx context.Context, n int, d time.Duration, rounds, suites int, echoAddr string, pull pullRoundFunc) (pullRun, error) {
	echo := func(ctx context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error) {
		return pullClients{Echo: echoAddr, Devices: n, Duration: slot, Window: slot}.echo(ctx, cpu) // bench_pull_clients.go
	}
	return interleave(ctx, n, d, rounds, suites, echo, pull)
}

// roundOf is the length of each of rounds rounds that share d, at least 100 ms.
func roundOf(d time.Duration, rounds int) time.Duration {
	return max(d/time.Duration(max(rounds, 1)), 100*time.Millisecond)
}

func interleave(ctx context.Context, n int, d time.Duration, rounds, suites int, echo echoRoundFunc, pull pullRoundFunc) (pullRun, error) {
	slot := roundOf(d, rounds)
	run := pullRun{dtls: make([]pullSeries, suites)}
	schedule := pullSchedule(rounds, suites)
	rates := make([]float64, len(schedule)) // every round's blocks/s or round trips/s
	cpus := make([]float64, len(schedule))  // and its CPU per block or round trip
	for i, r := range schedule {
		var cpu pullCPU
		switch r.Kind {
		case roundEcho:
			e, err := echo(ctx, n, slot, &cpu)
			if err != nil {
				return run, err
			}
			rates[i], cpus[i] = e, perOp(cpu.used(), e*slot.Seconds())
			run.echoCPU += cpu.used()
			run.echoSrv += cpu.server()
			run.echoOps += e * slot.Seconds()
		default:
			s := &run.pull
			if r.Kind == roundDTLS {
				s = &run.dtls[r.Suite]
			}
			first := len(s.rep.Windows) == 0
			if first {
				s.rssStart = vmRSS()
			}
			rep, err := pull(ctx, r, slot, first, &cpu)
			if err != nil {
				return run, err
			}
			rates[i], cpus[i] = rep.BlocksPerSec, perOp(cpu.used(), float64(rep.Blocks))
			s.add(rep, &cpu)
			s.cpus = append(s.cpus, cpus[i])
			s.rssEnd = vmRSS()
		}
	}
	// The pairs, once both of their rounds have run (the plain round may come second).
	for i, r := range schedule {
		switch r.Kind {
		case roundEcho:
			run.echoes, run.plains = append(run.echoes, rates[i]), append(run.plains, rates[r.Plain])
			run.echoCPUs, run.plainCPUs = append(run.echoCPUs, cpus[i]), append(run.plainCPUs, cpus[r.Plain])
		case roundDTLS:
			s := &run.dtls[r.Suite]
			s.paired, s.pairedCPU = append(s.paired, rates[r.Plain]), append(s.pairedCPU, cpus[r.Plain])
		}
	}
	for i, e := range run.echoes {
		ratio := 0.0
		if e > 0 {
			ratio = run.plains[i] / e
		}
		run.ratios = append(run.ratios, ratio)
	}
	run.echo = median(run.echoes)
	return run, nil
}

// ratio is the median of the pairs' ratios of plain blocks/s to echo round trips/s.
func (r pullRun) ratio() float64 { return median(r.ratios) }

// pullCPUPerOp is the process CPU per plain block pulled (both sides), in µs.
func (r pullRun) pullCPUPerOp() float64 { total, _ := r.pull.cpuPerBlock(); return total }

// serverCPUPerOp is the server's CPU per plain block pulled, in µs.
func (r pullRun) serverCPUPerOp() float64 { _, srv := r.pull.cpuPerBlock(); return srv }

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
	if r.echoOps <= 0 || r.pull.rep.Blocks == 0 || r.pull.cpu <= 0 {
		return 0
	}
	echoPer := float64(r.echoCPU) / r.echoOps
	pullPer := float64(r.pull.cpu) / float64(r.pull.rep.Blocks)
	return echoPer / pullPer
}

// pullGoal is the ratio issue 16 sets for plain CoAP to the echo and for DTLS to plain CoAP.
const pullGoal = 0.6

// roundsLine is the line under a run that shows its pairs: each pair's two rates as b/a, then
// the median of the pairs' ratios b/a with its range and how many reached pullGoal, then the
// median of the pairs' CPU ratios cpuB/cpuA (CPU per operation of both sides: on a machine
// too loaded to give either round what it asked for, the steadier comparison). It starts with
// "rounds" where a run's row starts with its device count or "dtls".
func roundsLine(what string, a, b, cpuA, cpuB []float64) string {
	s, pairs, reached := pairRatios(a, b, pullGoal)
	line := fmt.Sprintf("%8s %s:", "rounds", what)
	for i := range min(len(a), len(b)) {
		line += fmt.Sprintf(" %.0f/%.0f", b[i], a[i])
	}
	c, _, _ := pairRatios(cpuA, cpuB, 0)
	return line + fmt.Sprintf("; median %.2f of %d pair ratios (%.2f to %.2f), %d of %d at %.1fx or more; cpu ratio median %.2f (%.2f to %.2f)",
		s.Median, pairs, s.Min, s.Max, reached, pairs, pullGoal, c.Median, c.Min, c.Max)
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
