package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestPullSchedule: every DTLS round and every echo round is paired with a plain round right
// beside it, each suite's pairs and the echo's take turns at going first, and each suite gets
// its rounds; without DTLS the echo and plain CoAP alternate as echo-pull, pull-echo.
func TestPullSchedule(t *testing.T) {
	const (
		E = roundEcho
		P = roundPlain
		D = roundDTLS
	)
	tests := []struct {
		rounds, suites int
		want           string // kinds in order, DTLS rounds as their suite's index
	}{
		{1, 0, "EP"},
		{3, 0, "EPPEEP"},
		{1, 1, "0PE"},
		{2, 1, "0PEEP0"},
		{3, 1, "0PEEP00PE"},
		{2, 2, "0PEEP11PEEP0"},
		{1, 3, "0PEEP12PE"},
		{2, 3, "0PEEP12PEEP21PEEP0"},
		{3, 3, "0PEEP12PEEP21PEEP00PEEP12PE"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d rounds %d suites", tc.rounds, tc.suites), func(t *testing.T) {
			s := pullSchedule(tc.rounds, tc.suites)
			var got strings.Builder
			for _, r := range s {
				switch r.Kind {
				case E:
					got.WriteByte('E')
				case P:
					got.WriteByte('P')
				case D:
					got.WriteByte(byte('0' + r.Suite))
				}
			}
			if got.String() != tc.want {
				t.Fatalf("schedule %s, want %s", got.String(), tc.want)
			}
			// firsts[k] is, per series (the echo: -1, a suite: its index), whether it went
			// before its plain round, pair by pair.
			firsts := map[int][]bool{}
			plainUsed := map[int][]pullRoundKind{}
			for i, r := range s {
				if r.Kind == P {
					if r.Plain != -1 {
						t.Errorf("plain round %d paired with %d", i, r.Plain)
					}
					continue
				}
				if r.Plain != i-1 && r.Plain != i+1 || s[r.Plain].Kind != P {
					t.Fatalf("round %d (%v) paired with round %d, not a plain round beside it", i, r.Kind, r.Plain)
				}
				for _, k := range plainUsed[r.Plain] {
					if k == r.Kind {
						t.Errorf("plain round %d paired with two rounds of kind %v", r.Plain, k)
					}
				}
				plainUsed[r.Plain] = append(plainUsed[r.Plain], r.Kind)
				series := -1
				if r.Kind == D {
					series = r.Suite
				}
				firsts[series] = append(firsts[series], r.Plain > i)
			}
			wantPairs := map[int]int{-1: tc.rounds * max(tc.suites, 1)}
			for suite := range tc.suites {
				wantPairs[suite] = tc.rounds
			}
			for series, n := range wantPairs {
				f := firsts[series]
				if len(f) != n {
					t.Errorf("series %d: %d pairs, want %d", series, len(f), n)
				}
				for k := 1; k < len(f); k++ {
					if f[k] == f[k-1] {
						t.Errorf("series %d: pairs %d and %d both with the same round first (%v)", series, k, k+1, f)
					}
				}
			}
		})
	}
}

// TestInterleavePullFairUnderLoadSwing runs a fake echo, plain pull and DTLS pulls on a machine
// whose speed halves halfway through (another session starts compiling): the plain run in the
// first half and the DTLS runs in the second would give half their ratio, and an echo alone in
// the first half and the pull alone in the second 0.3, not the 0.6 the two have on any one
// machine. The rounds pair each DTLS round with the plain round beside it and that one with an
// echo round, and the medians of the pairs' ratios stay 0.6, 0.7 and 0.5. The echo's CPU is
// measured as the pull's, its clients' part as its rounds report it (from the child process
// that runs them, in lwota bench pull).
func TestInterleavePullFairUnderLoadSwing(t *testing.T) {
	const (
		d      = 3 * time.Second
		rounds = 3
		suites = 2
	)
	total := len(pullSchedule(rounds, suites))
	calls := 0
	speed := func() float64 { // the machine's speed at this call
		calls++
		if calls > total/2 {
			return 0.5
		}
		return 1
	}
	dtlsRate := []float64{70000, 50000}
	const echoClientCPU = 3 * time.Millisecond // per round, as a child would report it
	echo := func(_ context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error) {
		if n != 64 || slot != d/rounds {
			t.Errorf("echo with %d clients for %v, want 64 for %v", n, slot, d/rounds)
		}
		cpu.start()
		r := 100000 * speed()
		cpu.end()
		cpu.clients = echoClientCPU
		return r, nil
	}
	blocks := map[pullRoundKind]int64{}
	firsts := 0
	pull := func(_ context.Context, r pullRound, slot time.Duration, first bool, cpu *pullCPU) (lwm2mtest.PullReport, error) {
		if first {
			firsts++
		}
		cpu.start()
		rate := 60000.0
		if r.Kind == roundDTLS {
			rate = dtlsRate[r.Suite] * 0.6
		}
		rate *= speed()
		cpu.end()
		blocks[r.Kind] += int64(rate * slot.Seconds())
		return lwm2mtest.PullReport{Devices: 64, Elapsed: slot, Blocks: int64(rate * slot.Seconds()), BlocksPerSec: rate, BlocksMedian: 7}, nil
	}
	run, err := interleave(context.Background(), 64, d, rounds, suites, echo, pull)
	if err != nil {
		t.Fatal(err)
	}
	if calls != total {
		t.Fatalf("%d rounds ran, want %d", calls, total)
	}
	if firsts != 1+suites {
		t.Errorf("%d rounds were the first of their series, want %d", firsts, 1+suites)
	}
	pairs := rounds * suites
	if len(run.ratios) != pairs || len(run.pull.rep.Windows) != pairs || len(run.echoes) != pairs {
		t.Fatalf("%d ratios, %d plain rounds, %d echo rounds, want %d of each", len(run.ratios), len(run.pull.rep.Windows), len(run.echoes), pairs)
	}
	if got := run.ratio(); math.Abs(got-0.6) > 1e-9 {
		t.Errorf("plain/echo ratio %.3f (pairs %v), want 0.6", got, run.ratios)
	}
	for i, s := range run.dtls {
		want := dtlsRate[i] / 100000
		got, n, _ := pairRatios(s.paired, s.rep.Windows, pullGoal)
		if n != rounds || math.Abs(got.Median-want) > 1e-9 || math.Abs(got.Min-got.Max) > 1e-9 {
			t.Errorf("suite %d: dtls/plain %+v over %d pairs, want %.2f in all %d", i, got, n, want, rounds)
		}
		if s.rep.Blocks == 0 || s.rep.BlocksMedian != 7 {
			t.Errorf("suite %d: %d blocks, median %d per device: the rounds are not summed", i, s.rep.Blocks, s.rep.BlocksMedian)
		}
	}
	if run.pull.rep.Blocks != blocks[roundPlain] {
		t.Errorf("plain blocks %d, want %d: the rounds' blocks are not summed", run.pull.rep.Blocks, blocks[roundPlain])
	}
	if got := run.echoCPU - run.echoSrv; got != time.Duration(pairs)*echoClientCPU {
		t.Errorf("echo clients' CPU %v, want %v: the rounds' client CPU is not counted", got, time.Duration(pairs)*echoClientCPU)
	}
	if run.echoServerCPUPerOp() > run.echoCPUPerOp() || run.echoCPUPerOp() <= 0 {
		t.Errorf("echo CPU per round trip %.3f µs, server's %.3f", run.echoCPUPerOp(), run.echoServerCPUPerOp())
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
