package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// The registration benchmark's rounds. Both lwota servers under test (SQLite and PostgreSQL)
// run at once, and the benchmark measures them alternately: registration round r of every
// system, then round r+1, ..., then the Update rounds the same way. Each figure is one sample
// of a second or two, and on a shared machine the load moves between samples; samples of the
// two systems taken next to each other in time see the same load, so their ratio is what the
// comparison reads: the median of the per-pair ratios, with its spread (as benchstat does).

// benchSystem is one server under test and the meters its rounds read.
type benchSystem struct {
	Name string
	Addr string // the server's CoAP address
	// CPU is the server's CPU time. Both lwota servers run in this process, so it is the
	// process's: a round also pays for the idle server's timers (measured by the idle check).
	CPU func() time.Duration
	// DBCPU is the database cluster's own CPU time (a PostgreSQL cluster on this machine);
	// nil: none measured.
	DBCPU func() time.Duration
	// Held is how many registrations the server holds.
	Held func() int
	// Heap is the process's live heap after a full collection; nil: not measured.
	Heap func() uint64
}

// roundResult is what one round of one system measured.
type roundResult struct {
	System, Round int
	N             int // registrations or Updates answered
	Took          string
	Rate          float64       // per second, as the client saw it
	CPU           time.Duration // the server's, per operation
	DBCPU         time.Duration // the database cluster's, per operation
	Reregistered  int           // Updates answered 4.04 and replaced by a Register (raw client)
	HeapGrowth    int64         // live heap after the round minus before (registration rounds)
}

// roundsResult is every round of a run, per system in the order they ran.
type roundsResult struct {
	Regs, Updates [][]roundResult // [system][round]
	// IdleDBCPU is, per system, its database cluster's CPU during the other systems' rounds
	// (registrations and Updates): what an idle system costs while another is measured.
	IdleDBCPU []time.Duration
	// IdleCPU is the process's CPU over IdleFor with every server idle, holding the
	// registrations of every round: the timers both lwota servers run while idle.
	IdleCPU, IdleFor time.Duration
}

// roundsConfig is the shape of a run of rounds.
type roundsConfig struct {
	Devices      int // new devices per registration round
	Rounds       int // registration rounds per system
	UpdateRounds int // Update rounds per system (0: none)
	Updates      int // Updates per device in an Update round
	// IdleFor is the length of the idle check between the registration and the Update rounds
	// (0: none).
	IdleFor time.Duration
	// CPUProfile is a file for the CPU profile of the first system's first registration round;
	// UpdatesProfile of its first Update round.
	CPUProfile, UpdatesProfile string
	// SettleWindow is the window of settle after each round (0: none): a round ends once its
	// server has been quiet for a window, at most SettleLimit after the client's report.
	SettleWindow, SettleLimit time.Duration
}

// settleQuiet is the CPU a server and its database may each spend in a settle window and be
// taken for quiet: 3% of a core over the 500 ms window lwota bench uses (two idle lwota servers
// spend 3 to 7 ms; PostgreSQL's CPU is read in 10 ms ticks). The emulated devices' /3/0 reads
// drain after a round at about a tenth of a core (32 readers), which a coarser threshold
// would take for quiet.
const settleQuiet = 15 * time.Millisecond

// settle waits until sys has spent less than settleQuiet (CPU and database CPU) over a window,
// at most limit, and returns both meters as they were when that quiet window began, and whether
// it came. The work a round leaves behind after the client's last answer (the server's read of
// /3/0 from an emulated device it has just registered, and the store's write of what it read) is
// so the round's own, not the next round's (the other server's).
func settle(ctx context.Context, sys benchSystem, window, limit time.Duration) (cpu, db time.Duration, quiet bool) {
	cpu, db = sys.CPU(), meter(sys.DBCPU)
	if window <= 0 {
		return cpu, db, true
	}
	t := time.NewTicker(window)
	defer t.Stop()
	for end := time.Now().Add(limit); time.Now().Before(end); {
		select {
		case <-t.C:
		case <-ctx.Done():
			return cpu, db, false
		}
		c, d := sys.CPU(), meter(sys.DBCPU)
		if c-cpu < settleQuiet && d-db < settleQuiet {
			return cpu, db, true
		}
		cpu, db = c, d
	}
	return cpu, db, false
}

// roundFleet is the devices of one registration round, still running.
type roundFleet interface {
	// Update has every device send a batch of Updates and returns the client's report line.
	Update(ctx context.Context) (string, error)
	Close() error
}

// startRound registers devices new to system sys (registration round round) and returns the
// client's report line and the devices, which stay for the Update rounds until closed.
type startRound func(ctx context.Context, sys, round int) (string, roundFleet, error)

// pairOrder is the order of rounds rounds of n systems, as system indexes: pair after pair, each
// pair every system once, the pairs alternately forwards and backwards (0 1, 1 0, 0 1, ...) so
// that no system always runs right after the other one's round (whose background work, a
// checkpoint or a vacuum, may still run) nor always first.
func pairOrder(rounds, n int) []int {
	order := make([]int, 0, rounds*n)
	for r := range rounds {
		for i := range n {
			if r%2 == 1 {
				i = n - 1 - i
			}
			order = append(order, i)
		}
	}
	return order
}

// runRounds runs cfg's registration rounds and then its Update rounds on systems, in pairOrder,
// with the devices start gives. Each round reads the meters of its own system only, before the
// devices start and once the client reported; every round's line goes to progress.
func runRounds(ctx context.Context, cfg roundsConfig, systems []benchSystem, start startRound, progress io.Writer) (roundsResult, error) {
	n := len(systems)
	res := roundsResult{Regs: make([][]roundResult, n), Updates: make([][]roundResult, n), IdleDBCPU: make([]time.Duration, n)}
	// Every round's devices run until the end: an emulated device that left would leave the
	// server retransmitting its read of /3/0 into the later rounds. The Update rounds use each
	// system's last round's devices.
	var all []roundFleet
	defer func() {
		for _, f := range all {
			_ = f.Close()
		}
	}()
	last := make([]roundFleet, n)
	// idle samples every other system's database CPU around a round of system s.
	idle := func(s int) func() {
		before := make([]time.Duration, n)
		for i, o := range systems {
			if i != s && o.DBCPU != nil {
				before[i] = o.DBCPU()
			}
		}
		return func() {
			for i, o := range systems {
				if i != s && o.DBCPU != nil {
					res.IdleDBCPU[i] += o.DBCPU() - before[i]
				}
			}
		}
	}
	// measure runs one round of system s (run), profiled into profile when that is set, and
	// returns s's CPU and its database's over the round, read once s is quiet again.
	measure := func(s int, profile, flag string, run func() error) (cpu, db time.Duration, quiet bool, err error) {
		sys := systems[s]
		if profile != "" {
			stop, err := startCPUProfile(profile)
			if err != nil {
				return 0, 0, false, fmt.Errorf("%s: %w", flag, err)
			}
			defer stop()
		}
		idleDone := idle(s)
		defer idleDone()
		cpu0, db0 := sys.CPU(), meter(sys.DBCPU)
		if err := run(); err != nil {
			return 0, 0, false, err
		}
		cpu1, db1, quiet := settle(ctx, sys, cfg.SettleWindow, cfg.SettleLimit)
		return cpu1 - cpu0, db1 - db0, quiet, nil
	}
	for k, s := range pairOrder(cfg.Rounds, n) {
		sys, round := systems[s], k/n
		var heap0 uint64
		if sys.Heap != nil {
			heap0 = sys.Heap()
		}
		held0 := sys.Held()
		profile := ""
		if s == 0 && round == 0 {
			profile = cfg.CPUProfile
		}
		var line string
		var f roundFleet
		cpu, db, quiet, err := measure(s, profile, "--cpuprofile", func() (err error) {
			line, f, err = start(ctx, s, round)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("bench: %s, registration round %d: %w", sys.Name, round+1, err)
		}
		all, last[s] = append(all, f), f
		r := roundResult{System: s, Round: round}
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "registered %d devices in %s (%f registrations/s)", &r.N, &r.Took, &r.Rate); err != nil {
			return res, fmt.Errorf("bench: unexpected client output %q: %w", line, err)
		}
		if got := sys.Held() - held0; got != cfg.Devices {
			return res, fmt.Errorf("bench: %s, registration round %d: the server holds %d new registrations, want %d", sys.Name, round+1, got, cfg.Devices)
		}
		r.CPU, r.DBCPU = cpuPerOp(cpu, r.N), cpuPerOp(db, r.N)
		if sys.Heap != nil {
			r.HeapGrowth = int64(sys.Heap()) - int64(heap0)
		}
		res.Regs[s] = append(res.Regs[s], r)
		fmt.Fprintf(progress, "round %d registrations (%s): %d in %s: %.0f/s; server CPU %s each%s%s\n", round+1, sys.Name, r.N, r.Took, r.Rate, micros(r.CPU), dbCPUText(r.DBCPU, sys), busyText(quiet, cfg))
	}
	if cfg.IdleFor > 0 {
		cpu0 := systems[0].CPU()
		select {
		case <-time.After(cfg.IdleFor):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		res.IdleCPU, res.IdleFor = systems[0].CPU()-cpu0, cfg.IdleFor
	}
	if cfg.Updates < 1 {
		return res, nil
	}
	for k, s := range pairOrder(cfg.UpdateRounds, n) {
		sys, round := systems[s], k/n
		profile := ""
		if s == 0 && round == 0 {
			profile = cfg.UpdatesProfile
		}
		var line string
		cpu, db, quiet, err := measure(s, profile, "--cpuprofile-updates", func() (err error) {
			line, err = last[s].Update(ctx)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("bench: %s, Update round %d: %w", sys.Name, round+1, err)
		}
		r := roundResult{System: s, Round: round}
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "updated %d times in %s (%f updates/s)", &r.N, &r.Took, &r.Rate); err != nil {
			return res, fmt.Errorf("bench: unexpected client output %q: %w", line, err)
		}
		if _, rest, ok := strings.Cut(line, "; "); ok { // the raw client's "re-registered N after 4.04"
			_, _ = fmt.Sscanf(rest, "re-registered %d", &r.Reregistered)
		}
		r.CPU, r.DBCPU = cpuPerOp(cpu, r.N), cpuPerOp(db, r.N)
		res.Updates[s] = append(res.Updates[s], r)
		fmt.Fprintf(progress, "round %d updates (%s): %d in %s: %.0f/s; server CPU %s each%s%s\n", round+1, sys.Name, r.N, r.Took, r.Rate, micros(r.CPU), dbCPUText(r.DBCPU, sys), busyText(quiet, cfg))
	}
	return res, nil
}

func meter(m func() time.Duration) time.Duration {
	if m == nil {
		return 0
	}
	return m()
}

func cpuPerOp(d time.Duration, n int) time.Duration { return d / time.Duration(max(n, 1)) }

func busyText(quiet bool, cfg roundsConfig) string {
	if quiet {
		return ""
	}
	return fmt.Sprintf(" (still busy %s after the client's report: the next round pays for the rest)", cfg.SettleLimit)
}

func dbCPUText(d time.Duration, sys benchSystem) string {
	if sys.DBCPU == nil {
		return ""
	}
	return fmt.Sprintf(", plus %s in %s", micros(d), sys.Name)
}

// spread is the median and the range of samples.
type spread struct{ Median, Min, Max float64 }

// spreadOf is the median (of the middle two, for an even count) and the range of xs; zero for
// none.
func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// pairRatios compares system b with system a pair by pair: the ratios b[i]/a[i] of the samples
// taken next to each other in time, their spread, and how many are at least goal. Pairs past
// the shorter list, and pairs with a zero a, are left out.
func pairRatios(a, b []float64, goal float64) (s spread, pairs, reached int) {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if a[i] == 0 {
			continue
		}
		r := b[i] / a[i]
		rs = append(rs, r)
		if r >= goal {
			reached++
		}
	}
	return spreadOf(rs), len(rs), reached
}

// rates is the rate of every round, in round order.
func rates(rs []roundResult) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.Rate
	}
	return out
}

// durations is the median and the range of a per-operation CPU time of rounds.
func durations(rs []roundResult, of func(roundResult) time.Duration) spread {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = float64(of(r))
	}
	return spreadOf(xs)
}

// simRounds starts each registration round's devices as a `lwota sim` child process (emulated
// or raw devices, cfg.Client), from a loopback source address of the round's own: one address
// has ports for fewer than 30,000 sockets, and a server remembers (source, message id) pairs to
// answer retransmissions, so a device on a source an earlier one had could be answered from that
// memory. A child sends a round of Updates per line on its stdin and exits when it ends.
func simRounds(cfg benchConfig, systems []benchSystem, stderr io.Writer) (startRound, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	runID := time.Now().UnixNano() & 0xffffffff
	return func(ctx context.Context, sys, round int) (string, roundFleet, error) {
		// A prefix of its own per round and run, so that a PostgreSQL database reused across
		// runs still sees new endpoints (first registrations, the case measured).
		prefix := fmt.Sprintf("bench-%x-%d-%d-", runID, sys, round)
		local := netip.AddrFrom4([4]byte{127, byte(10 + sys), byte(round / 250), byte(1 + round%250)})
		child := exec.CommandContext(ctx, exe, "sim", "--server", systems[sys].Addr, "--count", fmt.Sprint(cfg.Devices),
			"--concurrency", fmt.Sprint(cfg.Concurrency), "--lifetime", "1h", "--prefix", prefix,
			"--updates", fmt.Sprint(max(cfg.Updates, 1)), "--stdin-updates", "--local-addr", local.String(),
			fmt.Sprintf("--raw=%t", cfg.Client == "raw"))
		child.Stderr = stderr
		in, err := child.StdinPipe()
		if err != nil {
			return "", nil, err
		}
		out, err := child.StdoutPipe()
		if err != nil {
			return "", nil, err
		}
		if err := child.Start(); err != nil {
			return "", nil, fmt.Errorf("start sim: %w", err)
		}
		f := &simFleet{child: child, in: in, out: bufio.NewReader(out)}
		line, err := f.out.ReadString('\n')
		if err != nil {
			_ = f.Close()
			return "", nil, fmt.Errorf("sim ended before registering: %w", err)
		}
		return line, f, nil
	}, nil
}

// simFleet is a `lwota sim --stdin-updates` child process.
type simFleet struct {
	child *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
}

func (f *simFleet) Update(ctx context.Context) (string, error) {
	if _, err := io.WriteString(f.in, "update\n"); err != nil {
		return "", err
	}
	line, err := f.out.ReadString('\n') // the child ends with ctx (exec.CommandContext)
	if err != nil {
		return "", fmt.Errorf("sim ended before its Updates: %w", err)
	}
	return line, nil
}

// Close ends the input, which ends the child; it is killed if it has not exited within a
// minute (closing tens of thousands of sockets takes well under that).
func (f *simFleet) Close() error {
	_ = f.in.Close()
	done := make(chan error, 1)
	go func() { done <- f.child.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		_ = f.child.Process.Kill()
		<-done
		return errors.New("sim did not exit a minute after its input ended")
	}
}
