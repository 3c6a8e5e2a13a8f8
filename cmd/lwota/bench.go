package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/lwm2mtest"
)

type benchConfig struct {
	Devices     int
	Concurrency int
	Database    string
	// Postgres, when set, adds lwota over this PostgreSQL database, measured alternately with
	// the first server (rounds, bench_rounds.go), and the ratios to it. Each round's endpoints
	// are new.
	Postgres string
	// Rounds is how many registration rounds of Devices new devices each server gets.
	Rounds int
	// UpdateRounds is how many Update rounds each server gets, after the registration rounds.
	UpdateRounds int
	// Updates is how many Updates each device of a server's last registration round sends in an
	// Update round; 0: no Update rounds.
	Updates int
	// CoapRD is libcoap's Resource Directory server, run with the same client as a baseline;
	// empty skips it.
	CoapRD string
	// Client is "sim" (the emulated devices of lwota sim) or "raw" (lwm2mtest.RegLoad: bare
	// Register and Update datagrams, so that the server, not the client, is measured).
	Client     string
	EchoFor    time.Duration
	CPUProfile string
	// UpdatesProfile is the file of the server's CPU profile over the first server's first
	// Update round alone, so that the steady state's CPU can be read apart from the
	// registrations'.
	UpdatesProfile string
	// ReadDeviceInfo keeps the server's read of /3/0 after each Register; off measures bare
	// registration.
	ReadDeviceInfo bool
	// IdleFor is how long the idle check watches the process's CPU with every server idle
	// (0: no check).
	IdleFor time.Duration
}

func parseBenchFlags(args []string, stderr io.Writer, getenv func(string) string) (benchConfig, error) {
	var c benchConfig
	fs := newFlagSet("bench", stderr)
	fs.IntVar(&c.Devices, "devices", 10000, "emulated devices that register")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "registrations in flight at once (and echo clients for the baseline)")
	fs.StringVar(&c.Database, "database", "", "database for the server under test (default: a fresh SQLite file)")
	fs.StringVar(&c.Postgres, "postgres", "", "also run against lwota over this PostgreSQL database, postgres://..., and print the PostgreSQL/SQLite ratios; auto: a cluster of its own with PostgreSQL's durable defaults (fsync, synchronous_commit), started with initdb and pg_ctl")
	fs.IntVar(&c.Rounds, "rounds", 3, "registration rounds per server, each of --devices new devices; with --postgres the servers take turns, round by round")
	fs.IntVar(&c.UpdateRounds, "update-rounds", 3, "Update rounds per server after the registration rounds, the servers taking turns; in each, every device of the server's last registration round sends --updates Updates")
	fs.IntVar(&c.Updates, "updates", 1, "registration Updates each device sends per Update round (Updates/s); 0: no Update rounds")
	fs.DurationVar(&c.IdleFor, "idle-check", time.Second, "between the registration and the Update rounds, how long to watch lwota's CPU with every server idle (what an idle server adds to the other's rounds); 0: skip")
	fs.StringVar(&c.CoapRD, "coap-rd", "coap-rd-notls", "libcoap's Resource Directory server, run with the same client as a baseline; empty: skip it")
	fs.StringVar(&c.Client, "client", "sim", "the registering client: sim (emulated devices, answering the server's reads) or raw (bare Register and Update datagrams, a few µs of client CPU each; the server's /3/0 read is turned off as nobody answers it)")
	fs.DurationVar(&c.EchoFor, "echo-for", 3*time.Second, "how long the raw UDP echo baseline runs")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the server's CPU profile during the first server's first registration round to this file")
	fs.StringVar(&c.UpdatesProfile, "cpuprofile-updates", "", "write the server's CPU profile during the first server's first Update round to this file")
	fs.BoolVar(&c.ReadDeviceInfo, "read-device-info", true, "the server reads /3/0 from each device after it registers, as lwota serve does; false measures bare registration")
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	switch c.Client {
	case "sim":
	case "raw":
		c.ReadDeviceInfo = false
	default:
		return c, fmt.Errorf("bench: --client %q: want sim or raw", c.Client)
	}
	if c.Updates < 0 {
		return c, fmt.Errorf("bench: --updates %d is negative", c.Updates)
	}
	if c.Rounds < 1 || c.Rounds > maxBenchRounds {
		return c, fmt.Errorf("bench: --rounds %d: want 1 to %d", c.Rounds, maxBenchRounds)
	}
	if c.UpdateRounds < 0 || c.UpdateRounds > maxBenchRounds {
		return c, fmt.Errorf("bench: --update-rounds %d: want 0 to %d", c.UpdateRounds, maxBenchRounds)
	}
	if c.CPUProfile != "" && c.UpdatesProfile != "" {
		return c, errors.New("bench: --cpuprofile and --cpuprofile-updates exclude each other (one CPU profile at a time)")
	}
	return c, nil
}

// regRun is what one run of the fleet (runFleet: libcoap's Resource Directory baseline, bench
// cluster) measured: rates as the client saw them, and the server's CPU time (user + system) per
// operation over the same interval. lwota's own runs are rounds (bench_rounds.go).
type regRun struct {
	Devices      int
	Took         string
	Rate         float64 // registrations/s
	CPUPerReg    time.Duration
	Updates      int
	UpdateRate   float64 // updates/s
	CPUPerUpdate time.Duration
	// DBCPUPerReg and DBCPUPerUpdate are the database server's CPU per operation, when it runs
	// on this machine as a cluster of the benchmark's own (--postgres auto); 0 otherwise.
	DBCPUPerReg    time.Duration
	DBCPUPerUpdate time.Duration
	Reregistered   int // Updates answered 4.04 and replaced by a Register (raw client only)
	Client         string
}

// bench measures registrations and registration Updates per second and the server's CPU per
// operation, on SQLite and (with --postgres) PostgreSQL in the same run, beside a raw UDP echo
// and libcoap's Resource Directory served to the same client. The emulated fleet runs in a
// child process so that its memory and CPU are not counted as the server's.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "pull" {
		return benchPullCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "pull-clients" { // the child process of bench pull
		return benchPullClients(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dtls" {
		return benchDTLSCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bootstrap" {
		return benchBootstrapCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "fleet" {
		return benchFleetCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "fleet-devices" { // the child process of bench fleet
		return benchFleetDevices(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "fleet-dtls" { // the child process of bench fleet --dtls-sessions
		return benchFleetDTLSClients(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cluster" {
		return benchClusterCommand(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "campaign" {
		return benchCampaignCommand(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseBenchFlags(args, stderr, os.Getenv)
	if err != nil {
		return asUsage(err)
	}
	echo, err := lwm2mtest.UDPEcho(ctx, cfg.Concurrency, cfg.EchoFor)
	if err != nil {
		return fmt.Errorf("bench: echo baseline: %w", err)
	}
	fmt.Fprintf(stdout, "baseline: raw UDP echo (20 B request, 1 KiB response), %d clients: %.0f round trips/s\n", cfg.Concurrency, echo)

	var rd *regRun
	if cfg.CoapRD != "" {
		r, err := benchCoapRD(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintf(stdout, "baseline: libcoap %s: skipped: %v\n", cfg.CoapRD, err)
		} else {
			rd = &r
			fmt.Fprintf(stdout, "baseline: libcoap %s (in-memory), same client, %d devices, %d in flight: %.0f registrations/s, %s server CPU each",
				cfg.CoapRD, r.Devices, cfg.Concurrency, r.Rate, micros(r.CPUPerReg))
			fmt.Fprintln(stdout, " (it answers Updates 4.05)")
		}
	}
	first := benchTarget{Name: "SQLite", Database: cfg.Database}
	if strings.HasPrefix(cfg.Database, "postgres") {
		first.Name = "PostgreSQL (--database)"
	}
	targets := []benchTarget{first}
	if cfg.Postgres == benchPostgresAuto {
		fmt.Fprintln(stderr, "bench: starting a PostgreSQL cluster")
		pg, err := startBenchPostgres(ctx)
		if err != nil {
			return err
		}
		defer pg.Stop()
		targets = append(targets, benchTarget{Name: "PostgreSQL", Database: pg.DSN, DBCPU: pg.CPU})
	} else if cfg.Postgres != "" {
		targets = append(targets, benchTarget{Name: "PostgreSQL", Database: cfg.Postgres})
	}
	systems, res, err := benchRounds(ctx, cfg, targets, stdout, stderr)
	if err != nil {
		return err
	}
	printRounds(stdout, cfg, systems, res, echo, rd)
	return nil
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// benchTarget is a database the registration benchmark runs lwota over.
type benchTarget struct {
	Name     string
	Database string               // empty: a fresh SQLite file
	DBCPU    func() time.Duration // the database cluster's CPU; nil: not measured
}

// maxBenchRounds bounds --rounds and --update-rounds: each registration round's devices send
// from a loopback address of their own (simRounds).
const maxBenchRounds = 1000

// benchRounds serves lwota over each target in this process, all at once, and runs the rounds
// of cfg on them alternately (runRounds), every round's line to progress. The servers stop
// before it returns.
func benchRounds(ctx context.Context, cfg benchConfig, targets []benchTarget, progress, stderr io.Writer) ([]benchSystem, roundsResult, error) {
	var systems []benchSystem
	for _, t := range targets {
		svc, err := startBenchService(ctx, "registrations", []string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "", "--allow-nosec",
			"--http-addr", "127.0.0.1:0", fmt.Sprintf("--read-device-info=%t", cfg.ReadDeviceInfo)},
			func(sc *serveConfig) {
				if t.Database != "" {
					sc.Database = t.Database
				}
			}, slog.LevelError, stderr)
		if err != nil {
			return nil, roundsResult{}, fmt.Errorf("bench: %s: %w", t.Name, err)
		}
		defer svc.stop()
		systems = append(systems, benchSystem{Name: t.Name, Addr: svc.core.Addr().String(), CPU: selfCPU, DBCPU: t.DBCPU,
			Held: svc.core.Registry().Count, Heap: liveHeap})
	}
	start, err := simRounds(cfg, systems, stderr)
	if err != nil {
		return nil, roundsResult{}, err
	}
	fmt.Fprintf(stderr, "bench: %d registration rounds and %d Update rounds of %d devices per server, %d servers taking turns\n",
		cfg.Rounds, cfg.UpdateRounds, cfg.Devices, len(systems))
	res, err := runRounds(ctx, roundsConfig{Devices: cfg.Devices, Rounds: cfg.Rounds, UpdateRounds: cfg.UpdateRounds, Updates: cfg.Updates,
		IdleFor: cfg.IdleFor, CPUProfile: cfg.CPUProfile, UpdatesProfile: cfg.UpdatesProfile,
		SettleWindow: 500 * time.Millisecond, SettleLimit: 30 * time.Second}, systems, start, progress)
	return systems, res, err
}

// printRounds prints, per server, the median and the range of its rounds beside the baselines,
// then each later server's ratio to the first as the median of the per-pair ratios, and the
// idle check.
func printRounds(w io.Writer, cfg benchConfig, systems []benchSystem, res roundsResult, echo float64, rd *regRun) {
	for s, sys := range systems {
		regs := res.Regs[s]
		rate, cpu, db := spreadOf(rates(regs)), durations(regs, func(r roundResult) time.Duration { return r.CPU }), durations(regs, func(r roundResult) time.Duration { return r.DBCPU })
		fmt.Fprintf(w, "registrations (%s, %s client): %d rounds of %d devices: median %.0f registrations/s (%.0f to %.0f; %.3f of the echo baseline",
			sys.Name, cfg.Client, len(regs), cfg.Devices, rate.Median, rate.Min, rate.Max, rate.Median/echo)
		if rd != nil {
			fmt.Fprintf(w, ", %.2fx libcoap's RD", rate.Median/rd.Rate)
		}
		fmt.Fprintf(w, "); server CPU %s per registration (median", micros(time.Duration(cpu.Median)))
		if rd != nil && rd.CPUPerReg > 0 {
			fmt.Fprintf(w, "; %.2fx libcoap's RD", cpu.Median/float64(rd.CPUPerReg))
		}
		fmt.Fprint(w, ")")
		if sys.DBCPU != nil {
			fmt.Fprintf(w, ", plus %s in %s", micros(time.Duration(db.Median)), sys.Name)
		}
		fmt.Fprintln(w)
		if ups := res.Updates[s]; len(ups) > 0 {
			rate, cpu, db := spreadOf(rates(ups)), durations(ups, func(r roundResult) time.Duration { return r.CPU }), durations(ups, func(r roundResult) time.Duration { return r.DBCPU })
			rereg := 0
			for _, r := range ups {
				rereg += r.Reregistered
			}
			fmt.Fprintf(w, "updates (%s): %d rounds of %d: median %.0f updates/s (%.0f to %.0f); server CPU %s per update (median)",
				sys.Name, len(ups), ups[0].N, rate.Median, rate.Min, rate.Max, micros(time.Duration(cpu.Median)))
			if sys.DBCPU != nil {
				fmt.Fprintf(w, ", plus %s in %s", micros(time.Duration(db.Median)), sys.Name)
			}
			if cfg.Client == "raw" {
				fmt.Fprintf(w, "; %d re-registered after 4.04", rereg)
			}
			fmt.Fprintln(w)
		}
		if sys.Heap != nil && len(regs) > 0 {
			var growth int64
			for _, r := range regs {
				growth += r.HeapGrowth
			}
			fmt.Fprintf(w, "server heap (%s): %.0f bytes per idle registered device (live heap growth over its own %d rounds, the other servers idle)\n",
				sys.Name, float64(growth)/float64(len(regs)*cfg.Devices), len(regs))
		}
	}
	for s := 1; s < len(systems); s++ {
		for _, k := range []struct {
			what string
			a, b []roundResult
		}{{"registrations/s", res.Regs[0], res.Regs[s]}, {"updates/s", res.Updates[0], res.Updates[s]}} {
			r, pairs, reached := pairRatios(rates(k.a), rates(k.b), benchPGGoal)
			if pairs == 0 {
				continue
			}
			fmt.Fprintf(w, "%s/%s %s: %.2fx, the median of %d pair ratios (%.2f to %.2f); %d of %d pairs at %.1fx or more\n",
				systems[s].Name, systems[0].Name, k.what, r.Median, pairs, r.Min, r.Max, reached, pairs, benchPGGoal)
			// On a saturated machine a rate is the share of the CPU the server got; its CPU per
			// operation (lwota's and its database's) is the steadier comparison.
			c, pairs, _ := pairRatios(serverCPU(k.a), serverCPU(k.b), 0)
			fmt.Fprintf(w, "%s/%s server CPU per %s (lwota's and the database's): %.2fx, the median of %d pair ratios (%.2f to %.2f)\n",
				systems[s].Name, systems[0].Name, strings.TrimSuffix(strings.TrimSuffix(k.what, "/s"), "s"), c.Median, pairs, c.Min, c.Max)
		}
	}
	for s, sys := range systems {
		if sys.DBCPU == nil {
			continue
		}
		var own time.Duration
		for _, r := range append(slices.Clone(res.Regs[s]), res.Updates[s]...) {
			own += r.DBCPU * time.Duration(r.N)
		}
		fmt.Fprintf(w, "idle check: %s's cluster spent %s of CPU during the other servers' rounds, %.1f%% of what it spent in its own\n",
			sys.Name, res.IdleDBCPU[s].Round(time.Millisecond), 100*float64(res.IdleDBCPU[s])/float64(max(own, 1)))
	}
	if res.IdleFor > 0 {
		busy := make([]float64, 0, len(systems)*cfg.Rounds)
		for _, regs := range res.Regs {
			for _, r := range regs {
				busy = append(busy, float64(r.CPU)*r.Rate) // CPU per second of the round
			}
		}
		idle := float64(res.IdleCPU) / res.IdleFor.Seconds()
		fmt.Fprintf(w, "idle check: lwota's process spent %s of CPU per second with every server idle, %.2f%% of its CPU per second in a registration round (median)\n",
			time.Duration(idle).Round(10*time.Microsecond), 100*idle/max(spreadOf(busy).Median, 1))
	}
}

// serverCPU is the CPU per operation of every round, the server's and its database's, in
// nanoseconds.
func serverCPU(rs []roundResult) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = float64(r.CPU + r.DBCPU)
	}
	return out
}

// benchPGGoal is issue 16's goal for PostgreSQL: no slower than 0.8x SQLite.
const benchPGGoal = 0.8

// benchCoapRD runs the fleet against libcoap's Resource Directory server, in memory.
func benchCoapRD(ctx context.Context, cfg benchConfig, stderr io.Writer) (regRun, error) {
	path := cfg.CoapRD // a path is used as given; a name is found where make deps installs it
	if !strings.Contains(path, "/") {
		var err error
		if path, err = sysdeps.Lookup(path); err != nil {
			return regRun{}, err
		}
	}
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return regRun{}, err
	}
	addr := l.LocalAddr().(*net.UDPAddr)
	l.Close() // the RD server binds it next; a race with another process is unlikely on loopback
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	rd := exec.CommandContext(runCtx, path, "-A", "127.0.0.1", "-p", strconv.Itoa(addr.Port), "-v", "0")
	rd.Stderr = stderr
	if err := rd.Start(); err != nil {
		return regRun{}, err
	}
	defer func() { _ = rd.Process.Kill(); _ = rd.Wait() }()
	time.Sleep(200 * time.Millisecond) // no readiness signal; the sim's first request retransmits anyway
	pid := rd.Process.Pid
	cfg.Updates = 0 // libcoap's RD answers an LwM2M Update (POST to the registration) 4.05
	return runFleet(runCtx, cfg, addr.String(), func() time.Duration { return procCPU(pid) }, nil, stderr)
}

// runFleet runs `lwota sim` in a child process against server and reads its reports, taking
// the server's CPU time (cpu) and, when set, its database's (dbCPU) at the start and at the end
// of each phase.
func runFleet(ctx context.Context, cfg benchConfig, server string, cpu, dbCPU func() time.Duration, stderr io.Writer) (regRun, error) {
	if dbCPU == nil {
		dbCPU = func() time.Duration { return 0 }
	}
	exe, err := os.Executable()
	if err != nil {
		return regRun{}, err
	}
	// A prefix of its own per run, so that a PostgreSQL database reused across runs still sees
	// new endpoints (first registrations, the case measured).
	prefix := fmt.Sprintf("bench-%x-", time.Now().UnixNano()&0xffffffff)
	child := exec.CommandContext(ctx, exe, "sim", "--server", server, "--count", fmt.Sprint(cfg.Devices),
		"--concurrency", fmt.Sprint(cfg.Concurrency), "--lifetime", "1h", "--prefix", prefix, "--updates", fmt.Sprint(cfg.Updates),
		fmt.Sprintf("--raw=%t", cfg.Client == "raw"))
	child.Stderr = stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return regRun{}, err
	}
	cpu0, db0 := cpu(), dbCPU()
	if err := child.Start(); err != nil {
		return regRun{}, fmt.Errorf("bench: start sim: %w", err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	if err != nil {
		return regRun{}, fmt.Errorf("bench: sim ended before registering: %w", err)
	}
	cpu1, db1 := cpu(), dbCPU()
	if cfg.UpdatesProfile != "" && cfg.Updates > 0 {
		stop, err := startCPUProfile(cfg.UpdatesProfile)
		if err != nil {
			return regRun{}, fmt.Errorf("bench: --cpuprofile-updates: %w", err)
		}
		defer stop()
	}
	r := regRun{Client: cfg.Client}
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "registered %d devices in %s (%f registrations/s)", &r.Devices, &r.Took, &r.Rate); err != nil {
		return r, fmt.Errorf("bench: unexpected sim output %q: %w", line, err)
	}
	r.CPUPerReg = (cpu1 - cpu0) / time.Duration(max(r.Devices, 1))
	r.DBCPUPerReg = (db1 - db0) / time.Duration(max(r.Devices, 1))
	if cfg.Updates == 0 {
		return r, nil
	}
	line, err = rd.ReadString('\n')
	if err != nil {
		return r, fmt.Errorf("bench: sim ended before its updates: %w", err)
	}
	cpu2, db2 := cpu(), dbCPU()
	var took string
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "updated %d times in %s (%f updates/s)", &r.Updates, &took, &r.UpdateRate); err != nil {
		return r, fmt.Errorf("bench: unexpected sim output %q: %w", line, err)
	}
	if _, rest, ok := strings.Cut(line, "; "); ok { // the raw client's "re-registered N after 4.04"
		_, _ = fmt.Sscanf(rest, "re-registered %d", &r.Reregistered)
	}
	r.CPUPerUpdate = (cpu2 - cpu1) / time.Duration(max(cfg.Devices*cfg.Updates, 1))
	r.DBCPUPerUpdate = (db2 - db1) / time.Duration(max(cfg.Devices*cfg.Updates, 1))
	return r, nil
}

// startCPUProfile starts this process's CPU profile into file; stop ends it and closes the file.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// selfCPU is this process's CPU time, user and system, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's CPU time, user and system, from /proc/PID/stat (Linux; 0 elsewhere).
func procCPU(pid int) time.Duration { return procStatTicks(pid, 11, 12) }

// procStatTicks is the sum of two clock-tick fields of /proc/PID/stat, counted from the first
// field after the command name (utime and stime are 11 and 12, cutime and cstime 13 and 14); 0
// when the file cannot be read (not Linux, the process gone).
func procStatTicks(pid, a, b int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) <= max(a, b) {
		return 0
	}
	x, _ := strconv.ParseInt(f[a], 10, 64)
	y, _ := strconv.ParseInt(f[b], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(x+y) * time.Second / clockTicks
}

// liveHeap is the heap still in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchPullCommand is `lwota bench pull`: firmware pull throughput over CoAP Block2 at several
// device counts, as a ratio to a raw UDP echo measured in the same run.
func benchPullCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench pull", stderr)
	devices := fs.String("devices", "16,64,1000", "comma-separated device counts, one run each")
	duration := fs.Duration("duration", 60*time.Second, "how long each run pulls at each device count: each DTLS suite in --rounds rounds, plain CoAP and the echo in as many rounds beside them (without --dtls: --rounds pairs of plain CoAP and echo rounds)")
	rounds := fs.Int("rounds", 3, "rounds each run's --duration is split into, each round beside one of the run it is compared with (DTLS beside plain CoAP, plain CoAP beside the echo); a ratio is the median of the pairs'")
	withDTLS := fs.Bool("dtls", false, "also pull over CoAP over DTLS at each device count, as a ratio to plain CoAP")
	ciphers := fs.String("cipher", "psk-ccm8", "with --dtls: comma-separated cipher suites, one DTLS run each: psk-ccm8, psk-gcm, ecdhe-ccm8")
	cpuProfile := fs.String("cpuprofile", "", "write the CPU profile of the whole run of the servers' process (lwota's and the echo's; their clients run in a child) to this file")
	runProfiles := fs.String("cpuprofile-runs", "", "write the CPU profile of each run's first round's measured window alone (no echo baseline, handshakes or teardown) to PREFIX.<devices>.plain and PREFIX.<devices>.dtls-<suite>")
	clientsProfiles := fs.String("clients-cpuprofile", "", "write the CPU profile of the devices' child process over each run's first round's measured window to PREFIX.<devices>.plain and PREFIX.<devices>.dtls-<suite>")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return err
	}
	if *cpuProfile != "" && *runProfiles != "" {
		return errors.New("bench pull: --cpuprofile and --cpuprofile-runs exclude each other (one CPU profile at a time)")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *rounds < 1 || *rounds > maxBenchRounds {
		return fmt.Errorf("bench pull: --rounds %d: want 1 to %d", *rounds, maxBenchRounds)
	}
	var counts []int
	for _, f := range strings.Split(*devices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bench pull: --devices: %q is not a device count", f)
		}
		counts = append(counts, n)
	}
	var suites []lwm2mtest.DTLSSuite
	if *withDTLS {
		var err error
		if suites, err = lwm2mtest.ParseDTLSSuites(*ciphers); err != nil {
			return fmt.Errorf("bench pull: --cipher: %w", err)
		}
	}
	return BenchPull(ctx, stdout, pullBenchConfig{Devices: counts, Duration: *duration, Rounds: *rounds, Suites: suites,
		Profiles: pullProfiles{runs: *runProfiles, clients: *clientsProfiles}})
}
