package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/pgtest"
)

// TestPairOrder: the servers take turns round by round, and the pairs alternate forwards and
// backwards, so that neither server always runs first nor always right after the other.
func TestPairOrder(t *testing.T) {
	tests := []struct {
		rounds, systems int
		want            []int
	}{
		{1, 1, []int{0}},
		{3, 1, []int{0, 0, 0}},
		{1, 2, []int{0, 1}},
		{3, 2, []int{0, 1, 1, 0, 0, 1}},
		{4, 2, []int{0, 1, 1, 0, 0, 1, 1, 0}},
		{2, 3, []int{0, 1, 2, 2, 1, 0}},
		{0, 2, []int{}},
	}
	for _, tc := range tests {
		if got := pairOrder(tc.rounds, tc.systems); !slices.Equal(got, tc.want) {
			t.Errorf("pairOrder(%d, %d) = %v, want %v", tc.rounds, tc.systems, got, tc.want)
		}
	}
}

// TestPairRatios: the ratio of two servers is the median of the ratios of the samples taken
// next to each other in time (the middle two's mean for an even count), not the ratio of the
// medians, with its range and the count of pairs at the goal.
func TestPairRatios(t *testing.T) {
	tests := []struct {
		name           string
		a, b           []float64
		want           spread
		pairs, reached int
	}{
		{"one pair", []float64{100}, []float64{80}, spread{0.8, 0.8, 0.8}, 1, 1},
		{"odd", []float64{100, 200, 50}, []float64{90, 100, 45}, spread{0.9, 0.5, 0.9}, 3, 2},
		{"even", []float64{100, 100, 100, 100}, []float64{70, 90, 60, 100}, spread{0.8, 0.6, 1}, 4, 2},
		// The medians alone (200 and 100) would say 0.5; every pair says 1.
		{"load moved", []float64{100, 200, 400}, []float64{100, 200, 400}, spread{1, 1, 1}, 3, 3},
		{"unequal lengths", []float64{100, 100, 100}, []float64{50, 100}, spread{0.75, 0.5, 1}, 2, 1},
		{"zero left out", []float64{0, 100}, []float64{50, 100}, spread{1, 1, 1}, 1, 1},
		{"none", nil, nil, spread{}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pairs, reached := pairRatios(tc.a, tc.b, 0.8)
			near := func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 }
			if !near(got.Median, tc.want.Median) || !near(got.Min, tc.want.Min) || !near(got.Max, tc.want.Max) || pairs != tc.pairs || reached != tc.reached {
				t.Errorf("pairRatios = %+v, %d pairs, %d reached; want %+v, %d, %d", got, pairs, reached, tc.want, tc.pairs, tc.reached)
			}
		})
	}
}

// fakeRoundFleet is a round's devices of TestRunRoundsCPUAttribution.
type fakeRoundFleet struct{ update func() (string, error) }

func (f fakeRoundFleet) Update(context.Context) (string, error) { return f.update() }
func (f fakeRoundFleet) Close() error                           { return nil }

// TestRunRoundsCPUAttribution: a round is charged with its own server's CPU and its own
// database's, never with what the idle server (or its database: a PostgreSQL checkpoint,
// autovacuum) spends meanwhile; that goes to the idle check. Each fake server's meters advance
// by a known amount during its own rounds and by another during the other's.
func TestRunRoundsCPUAttribution(t *testing.T) {
	const devices = 100
	var cpu, db [2]atomic.Int64                                           // nanoseconds
	var held [2]atomic.Int64                                              // registrations
	own := [2]time.Duration{10 * time.Millisecond, 30 * time.Millisecond} // lwota CPU of a round
	ownDB := 20 * time.Millisecond                                        // server 1's database, its round
	idleDB := 500 * time.Millisecond                                      // server 1's database, server 0's round
	idleCPU := 7 * time.Millisecond                                       // the idle lwota's timers
	work := func(s int) {
		cpu[s].Add(int64(own[s]))
		cpu[1-s].Add(int64(idleCPU))
		if s == 1 {
			db[1].Add(int64(ownDB))
		} else {
			db[1].Add(int64(idleDB))
		}
	}
	var order []int
	start := func(_ context.Context, s, round int) (string, roundFleet, error) {
		order = append(order, s)
		work(s)
		held[s].Add(devices)
		return fmt.Sprintf("registered %d devices in 10ms (10000 registrations/s)\n", devices), fakeRoundFleet{func() (string, error) {
			order = append(order, s)
			work(s)
			return fmt.Sprintf("updated %d times in 5ms (20000 updates/s)\n", devices), nil
		}}, nil
	}
	systems := make([]benchSystem, 2)
	for s := range systems {
		systems[s] = benchSystem{Name: fmt.Sprint("server ", s), CPU: func() time.Duration { return time.Duration(cpu[s].Load()) },
			Held: func() int { return int(held[s].Load()) }}
	}
	systems[1].DBCPU = func() time.Duration { return time.Duration(db[1].Load()) }
	res, err := runRounds(context.Background(), roundsConfig{Devices: devices, Rounds: 3, UpdateRounds: 2, Updates: 1}, systems, start, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 1, 0, 0, 1, 0, 1, 1, 0}; !slices.Equal(order, want) {
		t.Errorf("rounds ran in the order %v, want %v", order, want)
	}
	for s := range systems {
		for _, rs := range [][]roundResult{res.Regs[s], res.Updates[s]} {
			for _, r := range rs {
				if want := own[s] / devices; r.CPU != want {
					t.Errorf("server %d round %d: CPU %v per operation, want its own %v", s, r.Round+1, r.CPU, want)
				}
				want := time.Duration(0)
				if s == 1 {
					want = ownDB / devices
				}
				if r.DBCPU != want {
					t.Errorf("server %d round %d: database CPU %v per operation, want %v", s, r.Round+1, r.DBCPU, want)
				}
			}
		}
	}
	if want := 5 * idleDB; res.IdleDBCPU[1] != want { // server 0's 3 + 2 rounds
		t.Errorf("server 1's database during server 0's rounds: %v, want %v", res.IdleDBCPU[1], want)
	}
	if len(res.Regs[0]) != 3 || len(res.Regs[1]) != 3 || len(res.Updates[0]) != 2 || len(res.Updates[1]) != 2 {
		t.Errorf("rounds: %d and %d registration, %d and %d Update", len(res.Regs[0]), len(res.Regs[1]), len(res.Updates[0]), len(res.Updates[1]))
	}
}

// TestBenchRoundsSQLiteAndPostgres runs the registration benchmark's rounds end to end, a few
// devices per round, on SQLite and PostgreSQL at once, with both clients: every round registers
// new devices (the servers check the count), the Update rounds are answered, and the summary
// has the per-pair ratios.
func TestBenchRoundsSQLiteAndPostgres(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1") // the child `lwota sim` is this test binary acting as the CLI
	dsn := pgtest.Start(t)
	for _, client := range []string{"raw", "sim"} {
		t.Run(client, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cfg := benchConfig{Devices: 12, Concurrency: 4, Rounds: 3, UpdateRounds: 2, Updates: 2, Client: client, ReadDeviceInfo: client == "sim"}
			var rounds strings.Builder
			systems, res, err := benchRounds(ctx, cfg, []benchTarget{{Name: "SQLite"}, {Name: "PostgreSQL", Database: dsn}}, &rounds, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			for s := range systems {
				if len(res.Regs[s]) != 3 || len(res.Updates[s]) != 2 {
					t.Fatalf("%s: %d registration and %d Update rounds, want 3 and 2", systems[s].Name, len(res.Regs[s]), len(res.Updates[s]))
				}
				for _, r := range res.Updates[s] {
					if r.N != 24 {
						t.Errorf("%s Update round %d: %d Updates, want 24", systems[s].Name, r.Round+1, r.N)
					}
				}
			}
			if n := strings.Count(rounds.String(), "\n"); n != 10 {
				t.Errorf("%d round lines, want 10:\n%s", n, rounds.String())
			}
			var out strings.Builder
			printRounds(&out, cfg, systems, res, 1000, nil)
			for _, want := range []string{"registrations (PostgreSQL, " + client + " client): 3 rounds of 12 devices: median ", "PostgreSQL/SQLite registrations/s: ",
				"the median of 3 pair ratios", "PostgreSQL/SQLite updates/s: ", "the median of 2 pair ratios", "server heap (SQLite): ",
				"PostgreSQL/SQLite server CPU per registration (lwota's and the database's): ", "PostgreSQL/SQLite server CPU per update (lwota's and the database's): "} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestRunRoundsSettle: the work a server does after the client's last answer (its read of /3/0
// from an emulated device, the store's write of it) is charged to its own round, not to the
// next round, the other server's, with which it shares the process's CPU meter. Here each round
// leaves 3 × 40 ms of work behind, seen by the meter's next three reads.
func TestRunRoundsSettle(t *testing.T) {
	const devices = 100
	var (
		proc  time.Duration // the process's CPU, both servers'
		trail int           // reads of the meter that still see the last round's work
		held  [2]int
	)
	own := [2]time.Duration{10 * time.Millisecond, 30 * time.Millisecond}
	const left = 40 * time.Millisecond
	cpu := func() time.Duration {
		if trail > 0 {
			trail--
			proc += left
		}
		return proc
	}
	work := func(s int) { proc += own[s]; trail = 3 }
	start := func(_ context.Context, s, round int) (string, roundFleet, error) {
		work(s)
		held[s] += devices
		return fmt.Sprintf("registered %d devices in 10ms (10000 registrations/s)\n", devices), fakeRoundFleet{func() (string, error) {
			work(s)
			return fmt.Sprintf("updated %d times in 5ms (20000 updates/s)\n", devices), nil
		}}, nil
	}
	systems := make([]benchSystem, 2)
	for s := range systems {
		systems[s] = benchSystem{Name: fmt.Sprint("server ", s), CPU: cpu, Held: func() int { return held[s] }}
	}
	cfg := roundsConfig{Devices: devices, Rounds: 2, UpdateRounds: 2, Updates: 1, SettleWindow: time.Millisecond, SettleLimit: time.Minute}
	res, err := runRounds(context.Background(), cfg, systems, start, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for s := range systems {
		for _, rs := range [][]roundResult{res.Regs[s], res.Updates[s]} {
			for _, r := range rs {
				if want := (own[s] + 3*left) / devices; r.CPU != want {
					t.Errorf("server %d round %d: CPU %v per operation, want %v (its own work and what it left behind)", s, r.Round+1, r.CPU, want)
				}
			}
		}
	}
}
