package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
	"github.com/prometheus/client_golang/prometheus"
)

// lwota bench fleet: what one node holds. An in-process lwota registers a large fleet of idle
// NoSec devices from a child process (lwm2mtest.RegLoad spread over several loopback source
// addresses, so that a quarter of a million devices have distinct source ports and the child
// needs no socket per device), keeps it alive with Updates, and measures the server's memory per
// device, the Update rate, the latency of an API read of one device and of a campaign start at
// that size, then a campaign to real simulated devices against single-device updates of the
// same run. --dtls-sessions measures the memory of idle DTLS sessions at the transport.

type fleetBenchConfig struct {
	Devices         int
	Concurrency     int
	Lifetime        time.Duration
	CampaignDevices int
	ImageSize       int
	DTLSSessions    int
	DTLSPerChild    int
	// DTLSSetupTimeout bounds the handshakes of every DTLS session.
	DTLSSetupTimeout time.Duration
	HibernateAfter   time.Duration
	// StartDevices is how many idle devices the larger of the timed campaign starts selects.
	StartDevices int
	Samples      int
	Timeout      time.Duration
	MemProfile   string
	CPUProfile   string
	// Source is the first loopback address the idle devices send from (fleetPortsPerAddr
	// devices an address, then the next one).
	Source netip.Addr
}

func parseFleetBenchFlags(args []string, stderr io.Writer) (fleetBenchConfig, error) {
	var c fleetBenchConfig
	fs := newFlagSet("bench fleet", stderr)
	fs.IntVar(&c.Devices, "devices", 250000, "idle NoSec devices that register and stay registered")
	fs.IntVar(&c.Concurrency, "concurrency", 128, "registrations and Updates in flight at once")
	fs.DurationVar(&c.Lifetime, "lifetime", 10*time.Minute, "the devices' registration lifetime; each sends an Update every 3/4 of it")
	fs.IntVar(&c.CampaignDevices, "campaign-devices", 10000, "simulated devices (answering Object 5) that a campaign updates at that fleet size, against single-device updates of the same devices; 0 skips it")
	fs.IntVar(&c.ImageSize, "image-size", 16<<10, "the campaign's image size in bytes")
	fs.IntVar(&c.DTLSSessions, "dtls-sessions", 0, "also measure the memory of this many idle DTLS PSK sessions at the transport (pion clients in a child process); 0 skips it")
	fs.IntVar(&c.DTLSPerChild, "dtls-per-child", dtlsPerChild, "DTLS sessions per client process (a socket each, under the open-file limit)")
	fs.DurationVar(&c.DTLSSetupTimeout, "dtls-setup-timeout", 30*time.Minute, "give up when the DTLS sessions are not all established after this long")
	fs.IntVar(&c.StartDevices, "start-devices", 10000, "the larger timed campaign start selects this many idle devices (the smaller one 10)")
	fs.DurationVar(&c.HibernateAfter, "dtls-hibernate-after", transport.DefaultDTLSConfig().HibernateAfter, "idle DTLS sessions sleep after this long (as lwota serve --dtls-hibernate-after)")
	fs.IntVar(&c.Samples, "samples", 200, "API reads of one device, and campaign starts, timed for the p99")
	fs.DurationVar(&c.Timeout, "timeout", 90*time.Minute, "give up after this long (the full size, 250,000 devices and a campaign to 10,000, took over 30 minutes on a busy 2-core machine)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write the server's heap profile with the fleet registered to this file, and another after the API reads and campaign starts to this file with .starts appended")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write this process's CPU profile from the fleet registered to the end (API reads, campaign starts, the campaign) to this file")
	source := fs.String("source", "127.77.0.1", "the first loopback address the idle devices send from, 30,000 devices an address, then the next ones")
	if err := parseWithEnv(fs, args, os.Getenv); err != nil {
		return c, err
	}
	var err error
	if c.Source, err = netip.ParseAddr(*source); err != nil || !c.Source.Is4() || !c.Source.IsLoopback() {
		return c, fmt.Errorf("bench fleet: --source %q: want an IPv4 loopback address", *source)
	}
	switch {
	case c.Devices < 1:
		return c, fmt.Errorf("bench fleet: --devices %d: want at least 1", c.Devices)
	case c.Concurrency < 1:
		return c, fmt.Errorf("bench fleet: --concurrency %d: want at least 1", c.Concurrency)
	case c.CampaignDevices < 0 || c.DTLSSessions < 0 || c.StartDevices < 0:
		return c, fmt.Errorf("bench fleet: --campaign-devices, --dtls-sessions and --start-devices cannot be negative")
	case c.DTLSPerChild < 1 || c.DTLSPerChild > 18000:
		return c, fmt.Errorf("bench fleet: --dtls-per-child %d: want 1 to 18000 (a socket each, under the open-file limit)", c.DTLSPerChild)
	case c.StartDevices > 0 && (startDigits(c.StartDevices) < 0 || c.StartDevices > 1000000):
		return c, fmt.Errorf("bench fleet: --start-devices %d: want a power of ten up to 1000000 (an endpoint prefix selects them)", c.StartDevices)
	case c.DTLSSetupTimeout <= 0:
		return c, fmt.Errorf("bench fleet: --dtls-setup-timeout %s: want a positive duration", c.DTLSSetupTimeout)
	case c.Samples < 1:
		return c, fmt.Errorf("bench fleet: --samples %d: want at least 1", c.Samples)
	case c.Lifetime < time.Minute:
		return c, fmt.Errorf("bench fleet: --lifetime %s: want at least 1m", c.Lifetime)
	}
	return c, nil
}

// benchFleetCommand is `lwota bench fleet`.
func benchFleetCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFleetBenchFlags(args, stderr)
	if err != nil {
		return asUsage(err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// The child processes' stderr is copied by a goroutine each, beside this process's logs.
	stderr = &syncWriter{w: stderr}
	raiseOpenFiles() // the campaign's simulated devices hold a socket each
	if cfg.DTLSSessions > 0 {
		if err := benchFleetDTLS(ctx, cfg, stdout, stderr); err != nil {
			return err
		}
	}
	return benchFleet(ctx, cfg, stdout, stderr)
}

// memNow is the server process's live Go heap (after a full collection) and its RSS once the
// freed pages went back to the system: the memory a node holds for what is alive.
func memNow() (heap, rss int64) {
	heap = int64(liveHeap())
	debug.FreeOSMemory()
	return heap, vmRSS()
}

func benchFleet(ctx context.Context, cfg fleetBenchConfig, stdout, stderr io.Writer) error {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	token := "bench-" + hex.EncodeToString(secret)
	svc, err := startBenchService(ctx, "fleet", []string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "", "--allow-nosec", "--allow-unsigned",
		"--http-addr", "127.0.0.1:0", "--admin-token", token, "--update-poll", "5s", "--campaign-tick", "250ms"}, nil, slog.LevelWarn, stderr)
	if err != nil {
		return err
	}
	defer svc.stop()
	api := benchAPI{base: "http://" + svc.httpLn.Addr().String(), token: token}
	heap0, rss0 := memNow()
	fmt.Fprintf(stdout, "fleet: lwota started: %d MiB RSS, %d MiB live heap\n", rss0>>20, heap0>>20)

	kids, err := newBenchChildren()
	if err != nil {
		return err
	}
	defer kids.stop()
	pid, lines, err := kids.start(ctx, stderr, "bench", "fleet-devices", "--server", svc.core.Addr().String(), "--devices", fmt.Sprint(cfg.Devices),
		"--concurrency", fmt.Sprint(cfg.Concurrency), "--lifetime", cfg.Lifetime.String(), "--source", cfg.Source.String(), "--until-stdin-closes")
	if err != nil {
		return fmt.Errorf("bench fleet: start device client: %w", err)
	}
	fmt.Fprintf(stdout, "fleet: device client process (pid %d) registers %d devices\n", pid, cfg.Devices)
	var regRate, updRate float64
	for regRate == 0 || updRate == 0 {
		line, err := lines.ReadString('\n')
		if err != nil {
			return fmt.Errorf("bench fleet: device client ended: %w", err)
		}
		line = strings.TrimSpace(line)
		var n int
		var took string
		var rate float64
		switch {
		case strings.HasPrefix(line, "progress "):
			fmt.Fprintf(stdout, "fleet: %s\n", strings.TrimPrefix(line, "progress "))
		case strings.HasPrefix(line, "registered "):
			if _, err := fmt.Sscanf(line, "registered %d devices in %s (%f/s)", &n, &took, &rate); err != nil {
				return fmt.Errorf("bench fleet: device client said %q: %w", line, err)
			}
			regRate = rate
			fmt.Fprintf(stdout, "fleet: %d devices registered in %s: %.0f registrations/s\n", n, took, rate)
		case strings.HasPrefix(line, "updated "):
			if _, err := fmt.Sscanf(line, "updated %d devices in %s (%f/s)", &n, &took, &rate); err != nil {
				return fmt.Errorf("bench fleet: device client said %q: %w", line, err)
			}
			updRate = rate
			_, rereg, _ := strings.Cut(line, "; ") // "re-registered N after 4.04"
			fmt.Fprintf(stdout, "fleet: %d Updates in %s: %.0f Updates/s (%.2fx the registration rate); %s\n", n, took, rate, rate/regRate, rereg)
		default:
			return fmt.Errorf("bench fleet: device client said %q", line)
		}
	}
	// Later keep-alive rounds, as progress, beside this goroutine's lines: until the child ends,
	// which the bench waits for before it returns.
	stdout = &syncWriter{w: stdout}
	keepAlive := make(chan struct{})
	go func() {
		defer close(keepAlive)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(stdout, "fleet: keep-alive: %s", line)
		}
	}()
	defer func() { kids.stop(); <-keepAlive }()
	if online := svc.core.Registry().Count(); online != cfg.Devices {
		return fmt.Errorf("bench fleet: lwota holds %d registrations, want %d", online, cfg.Devices)
	}
	heap1, rss1 := memNow()
	fmt.Fprintf(stdout, "memory: %d idle registered NoSec devices: %.0f B RSS and %.0f B live Go heap per device (%d MiB RSS, %d MiB heap with the fleet; %d MiB, %d MiB without); goal: <= 2048 B RSS\n",
		cfg.Devices, float64(rss1-rss0)/float64(cfg.Devices), float64(heap1-heap0)/float64(cfg.Devices), rss1>>20, heap1>>20, rss0>>20, heap0>>20)
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return err
		}
	}

	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// An API read of one device, chosen at random, at this fleet size.
	var reads []time.Duration
	for range cfg.Samples {
		ep := fmt.Sprintf("%s%0*d", fleetPrefix, fleetDigits, mathrand.IntN(cfg.Devices))
		begin := time.Now()
		var out map[string]any
		if err := api.call("GET", "/api/v1/devices/"+ep, nil, &out); err != nil {
			return fmt.Errorf("bench fleet: read %s: %w", ep, err)
		}
		reads = append(reads, time.Since(begin))
	}
	// Campaign starts at this fleet size: created and started in one call, its selector (an
	// endpoint prefix picking 10 idle devices, then one picking --start-devices) evaluated at
	// this fleet size; then aborted. Each start picks other devices than the previous ones.
	img, err := api.uploadFor(benchImage("9.9.9", 1024), "9.9.9", "")
	if err != nil {
		return err
	}
	starts, _, err := timeCampaignStarts(api, img, 1, min(cfg.Samples, 20, max(cfg.Devices/10, 1)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "api at %d devices: read of one device p50 %s p99 %s (%d reads); campaign start p50 %s p99 %s (%d starts of 10 devices); goal: p99 < 100 ms\n",
		cfg.Devices, ms(percentile(reads, 0.5)), ms(percentile(reads, 0.99)), len(reads), ms(percentile(starts, 0.5)), ms(percentile(starts, 0.99)), len(starts))
	if big := startDigits(cfg.StartDevices); cfg.StartDevices > 10 && cfg.StartDevices <= cfg.Devices {
		starts, cpu, err := timeCampaignStarts(api, img, big, min(cfg.Samples, 20, cfg.Devices/cfg.StartDevices))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "api at %d devices: campaign start of %d devices p50 %s p99 %s (%d starts), CPU per start p50 %s; goal: p99 < 100 ms\n",
			cfg.Devices, cfg.StartDevices, ms(percentile(starts, 0.5)), ms(percentile(starts, 0.99)), len(starts), ms(percentile(cpu, 0.5)))
	}
	if cfg.MemProfile != "" {
		// A second heap profile after the timed reads and starts: its allocations less the
		// first's (go tool pprof -base) are what the starts, their ticks and aborts allocated.
		if err := writeHeapProfile(cfg.MemProfile + ".starts"); err != nil {
			return err
		}
	}

	if cfg.CampaignDevices > 0 {
		fmt.Fprintf(stdout, "campaign: %d simulated devices beside the %d idle ones\n", cfg.CampaignDevices, cfg.Devices)
		direct, rate, err := runCampaignBench(ctx, svc, api, cfg.CampaignDevices, cfg.ImageSize, cfg.Timeout, stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "campaign at %d devices: %.0f devices/s, %.2f of the single-device-update baseline (%.0f devices/s)\n",
			cfg.Devices, rate, rate/direct, direct)
	}
	return nil
}

// timeCampaignStarts times n campaign starts through the API (POST /api/v1/campaigns with
// "start": true, one wave), the i-th of the 10^digits idle devices whose number starts with i,
// and aborts each after its start, cancelling the updates it started (the idle devices would
// never answer them) before the next start. cpu is this process's CPU while each start ran
// (server and API client; the idle fleet's Updates too, a few a second): on a busy machine the
// time of a start measures the neighbours as much as lwota, its CPU much less.
func timeCampaignStarts(api benchAPI, img string, digits, n int) (starts, cpu []time.Duration, err error) {
	for i := range n {
		var c struct {
			ID       string `json:"id"`
			Progress struct {
				Counts struct {
					InProgress int `json:"in_progress"`
				} `json:"counts"`
			} `json:"progress"`
		}
		prefix := fmt.Sprintf("%s%0*d", fleetPrefix, fleetDigits-digits, i)
		body := map[string]any{"name": fmt.Sprintf("bench-start-%d-%d", digits, i), "image_id": img, "start": true,
			"selector": map[string]any{"query": fmt.Sprintf(`endpoint ^= "%s"`, prefix)}, "waves": []map[string]any{{"percent": 100}}}
		begin, cpu0 := time.Now(), processCPU()
		if err := api.call("POST", "/api/v1/campaigns", body, &c); err != nil {
			return nil, nil, fmt.Errorf("bench fleet: start campaign over %s*: %w", prefix, err)
		}
		starts, cpu = append(starts, time.Since(begin)), append(cpu, processCPU()-cpu0)
		if err := api.call("POST", "/api/v1/campaigns/"+c.ID+"/abort", map[string]any{"reason": "bench", "mode": "hard"}, &c); err != nil {
			return nil, nil, fmt.Errorf("bench fleet: abort campaign: %w", err)
		}
		// The next start is timed alone, not behind the cancelling of this one's updates.
		for deadline := time.Now().Add(2 * time.Minute); c.Progress.Counts.InProgress > 0; {
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("bench fleet: aborted campaign %s still has %d updates in progress", c.ID, c.Progress.Counts.InProgress)
			}
			time.Sleep(100 * time.Millisecond)
			if err := api.call("GET", "/api/v1/campaigns/"+c.ID, nil, &c); err != nil {
				return nil, nil, fmt.Errorf("bench fleet: campaign %s: %w", c.ID, err)
			}
		}
	}
	return starts, cpu, nil
}

// startDigits is d for n = 10^d (a prefix of the idle devices' numbers selects 10^d of them),
// or -1.
func startDigits(n int) int {
	d := 0
	for ; n > 1 && n%10 == 0; n /= 10 {
		d++
	}
	if n != 1 {
		return -1
	}
	return d
}

// fleetPrefix names the idle devices: fleet-0000000 ...
const fleetPrefix = "fleet-"

// fleetDigits is the width of an idle device's number: fleet-0000000 ... fleet-9999999.
const fleetDigits = 7

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// percentile is the q-quantile of ds (nearest rank).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseOpenFiles lifts this process's open-file limit to its hard limit (or further, as root).
func raiseOpenFiles() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return
	}
	want := l
	want.Cur = max(l.Max, 1<<20)
	want.Max = max(l.Max, 1<<20)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// Idle devices send from 127.77.A.B: a range of loopback addresses other tests do not use, each
// with fleetPortsPerAddr ports from fleetBasePort.
const (
	fleetPortsPerAddr = 30000
	fleetBasePort     = 1100 // below the ephemeral range (32768-60999): no other program's socket takes them
)

// benchFleetDevices is the hidden `lwota bench fleet-devices`: the idle fleet of lwota bench
// fleet. It registers, reports, sends one round of Updates at full speed (the Update rate), then
// an Update round every 3/4 of the lifetime until it is killed. Devices declare no Object 3, so
// that the server does not read the device information they would not answer.
func benchFleetDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench fleet-devices", stderr)
	server := fs.String("server", "", "lwota's CoAP address")
	devices := fs.Int("devices", 1000, "devices")
	concurrency := fs.Int("concurrency", 128, "requests in flight")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "registration lifetime")
	source := fs.String("source", "127.77.0.1", "the first source address")
	untilStdin := fs.Bool("until-stdin-closes", false, "end when stdin closes (the parent bench ended)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *untilStdin {
		var cancel context.CancelFunc
		ctx, cancel = untilStdinCloses(ctx)
		defer cancel()
	}
	first, err := netip.ParseAddr(*source)
	if err != nil {
		return err
	}
	l, err := lwm2mtest.NewRegLoadFrom(*server, *devices, func(i int) string { return fmt.Sprintf("%s%0*d", fleetPrefix, fleetDigits, i) },
		lwm2mtest.SpreadLocals(first, fleetPortsPerAddr, fleetBasePort))
	if err != nil {
		return err
	}
	l.Links = []byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</4/0>,</5>;ver=1.1,</5/0>,</6/0>,</7/0>`)
	lt := int(*lifetime / time.Second)
	// Register in slices, to report progress.
	step := max(*devices/10, 1000)
	start := time.Now()
	if _, err := l.RegisterProgress(ctx, *concurrency, lt, step, func(done int) {
		fmt.Fprintf(stdout, "progress %d of %d registered after %s\n", done, *devices, time.Since(start).Round(time.Second))
	}); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "registered %d devices in %s (%.0f/s)\n", *devices, took.Round(time.Millisecond), float64(*devices)/took.Seconds())
	// The first Update round runs at full speed: it is the Update rate. The later ones are
	// spread over half the lifetime, as devices that each keep their own lifetime send them (a
	// quarter of a million Updates within seconds every 3/4 of the lifetime is a load no fleet
	// makes, and it starves everything else of the store's writes): round k >= 1 starts L/4 +
	// (k-1)*3L/4 after the first, so that no device's Updates are more than 3L/4 apart.
	firstRound := time.Now()
	for round := 0; ; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(firstRound.Add(*lifetime/4 + time.Duration(round-1)**lifetime*3/4))):
			}
		}
		begin, rereg := time.Now(), l.Reregistered()
		n, err := l.Update(ctx, *concurrency, 1)
		rereg = l.Reregistered() - rereg // Updates answered 4.04, then registered again
		if err != nil && (round == 0 || ctx.Err() != nil) {
			return err
		}
		took := time.Since(begin)
		if round == 0 {
			fmt.Fprintf(stdout, "updated %d devices in %s (%.0f/s); re-registered %d after 4.04\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), rereg)
		} else {
			fmt.Fprintf(stdout, "updated %d devices in %s (spread over %s); re-registered %d after 4.04\n", n, took.Round(time.Millisecond), l.Spread, rereg)
		}
		if err != nil {
			fmt.Fprintf(stdout, "progress keep-alive: %d devices not updated, the first: %v\n", *devices-n, err)
		}
		// After the first round, a device the loaded server did not answer in time (four
		// transmissions over 30 s) must not end the fleet: the next round tries it again.
		l.KeepGoing = true
		l.Spread = *lifetime / 2
	}
}

// counterValue sums the counters named name in reg.
func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// dtlsPerChild is how many DTLS sessions one child process of bench fleet holds by default: each
// has a socket, and the open-file limit may not rise above 20,000.
const dtlsPerChild = 15000
