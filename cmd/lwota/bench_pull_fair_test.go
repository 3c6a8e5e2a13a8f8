package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestInterleavePullFairUnderLoadSwing runs a fake echo and pull on a machine whose speed halves
// halfway through (another session starts compiling): the echo alone in the first half and the
// pull alone in the second would give 0.3, not the 0.6 the two have on any one machine. The
// slots alternate echo and pull (ABBA), and the median of their ratios stays 0.6. The echo's
// CPU is measured as the pull's, its clients' part as its slots report it (from the child
// process that runs them, in lwota bench pull).
func TestInterleavePullFairUnderLoadSwing(t *testing.T) {
	const d = 5 * time.Second
	k := slotsOf(d)
	var order strings.Builder
	calls, blocks := 0, int64(0)
	speed := func() float64 { // the machine's speed at this call
		calls++
		if calls > k { // of 2k calls, the second half runs at half speed
			return 0.5
		}
		return 1
	}
	const echoClientCPU = 3 * time.Millisecond // per slot, as a child would report it
	echo := func(_ context.Context, n int, slot time.Duration, cpu *pullCPU) (float64, error) {
		if n != 64 || slot != pullWindow(d) {
			t.Errorf("echo with %d clients for %v, want 64 for %v", n, slot, pullWindow(d))
		}
		order.WriteByte('E')
		cpu.start()
		r := 100000 * speed()
		cpu.end()
		cpu.clients = echoClientCPU
		return r, nil
	}
	pull := func(_ context.Context, slot time.Duration, cpu *pullCPU) (lwm2mtest.PullReport, error) {
		order.WriteByte('P')
		cpu.start()
		r := 60000 * speed()
		cpu.end()
		blocks += int64(r * slot.Seconds())
		return lwm2mtest.PullReport{Devices: 64, Elapsed: slot, Blocks: int64(r * slot.Seconds()), BlocksPerSec: r}, nil
	}
	run, err := interleave(context.Background(), 64, d, echo, pull)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("EPPE", k/2) + strings.Repeat("EP", k%2); order.String() != want {
		t.Errorf("order %s, want %s", order.String(), want)
	}
	if len(run.ratios) != k || len(run.pull.Windows) != k {
		t.Fatalf("%d ratios, %d windows, want %d slots", len(run.ratios), len(run.pull.Windows), k)
	}
	if got := run.ratio(); math.Abs(got-0.6) > 1e-9 {
		t.Errorf("ratio %.3f (slots %v), want 0.6", got, run.ratios)
	}
	if run.pull.Blocks != blocks {
		t.Errorf("blocks %d: the slots' blocks are not summed", run.pull.Blocks)
	}
	if got := run.echoCPU - run.echoSrv; got != time.Duration(k)*echoClientCPU {
		t.Errorf("echo clients' CPU %v, want %v: the slots' client CPU is not counted", got, time.Duration(k)*echoClientCPU)
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
