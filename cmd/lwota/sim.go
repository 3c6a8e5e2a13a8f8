package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

type simConfig struct {
	Server       string
	Count        int
	Prefix       string
	Lifetime     time.Duration
	Binding      string
	Version      string
	Firmware     string
	Manufacturer string
	Model        string
	DeviceType   string
	Concurrency  int
	LogFormat    string
	LogLevel     string
	ExitAfterReg bool
	// Updates is how many rounds of registration Updates every device sends once all are
	// registered, as fast as Concurrency allows (lwota bench measures Updates/s with it).
	Updates int
	// Raw replaces the emulated devices by lwm2mtest.RegLoad: Register and Update datagrams
	// only, a few µs of client CPU each (lwota bench --client raw).
	Raw bool
	// LocalAddr is the source address of the devices' sockets (zero: any).
	LocalAddr netip.Addr
	// StdinUpdates defers the Updates: each line read from stdin runs one batch of --updates
	// rounds and prints its line; end of input ends the simulator (lwota bench's rounds).
	StdinUpdates bool

	// Faults and habits of real clients (server/lwm2mtest Faults and Profiles).
	Fail              string  // download, integrity, update (comma-separated)
	FailRatio         float64 // share of the devices that get --fail and --reboot-after-blocks
	Loss              float64 // datagram loss probability, every device
	RebootAfterBlocks int
	Profile           string // comma-separated profile names
	faults            lwm2mtest.Faults

	// Bootstrap (sim_bootstrap.go): the devices start from bootstrap credentials only.
	Bootstrap, BootstrapPSKIdentity, BootstrapPSKKey string

	simTransport // sim_tcp.go: --transport and the TLS files
}

// simFailures maps --fail values onto the simulator's faults.
var simFailures = map[string]func(*lwm2mtest.Faults){
	// The link drops after 4 blocks, once: the retry resumes the download.
	"download":  func(f *lwm2mtest.Faults) { f.FailAfterBlocks = 4 },
	"integrity": func(f *lwm2mtest.Faults) { f.IntegrityFailure = true },
	"update":    func(f *lwm2mtest.Faults) { f.UpdateFailure = true },
}

func parseSimFlags(args []string, stderr io.Writer, getenv func(string) string) (simConfig, error) {
	var c simConfig
	fs := newFlagSet("sim", stderr)
	fs.StringVar(&c.Server, "server", "127.0.0.1:5683", "CoAP address of the LwM2M server")
	fs.IntVar(&c.Count, "count", 10, "number of devices, each on its own UDP socket")
	fs.StringVar(&c.Prefix, "prefix", "sim-", "endpoint name prefix; devices are PREFIX000000, PREFIX000001, ...")
	fs.DurationVar(&c.Lifetime, "lifetime", 5*time.Minute, "registration lifetime; devices send Update before it runs out")
	fs.StringVar(&c.Binding, "binding", "U", "binding: U, or UQ for queue mode")
	fs.StringVar(&c.Version, "lwm2m", "1.1", "LwM2M version the devices speak: 1.0, 1.1 or 1.2")
	fs.StringVar(&c.Firmware, "firmware", "1.0.0", "firmware version the devices report at /3/0/3")
	fs.StringVar(&c.Manufacturer, "manufacturer", "lwota", "manufacturer the devices report at /3/0/0")
	fs.StringVar(&c.Model, "model", "lwota-sim", "model number the devices report at /3/0/1")
	fs.StringVar(&c.DeviceType, "device-type", "simulator", "device type the devices report at /3/0/17")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "registrations in flight at once")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "log level")
	fs.BoolVar(&c.ExitAfterReg, "exit-after-register", false, "exit once every device has registered")
	fs.BoolVar(&c.Raw, "raw", false, "minimal devices that only register (and update with --updates), then exit; they answer no request from the server (a throughput client)")
	fs.Func("local-addr", "source address of the devices' UDP sockets (the kernel picks the ports); default: any", func(v string) error {
		a, err := netip.ParseAddr(v)
		c.LocalAddr = a
		return err
	})
	fs.BoolVar(&c.StdinUpdates, "stdin-updates", false, "once every device registered, run a batch of --updates rounds of Updates for each line read from stdin (printing its line), and exit at the end of the input")
	fs.IntVar(&c.Updates, "updates", 0, "once every device registered, each sends this many registration Updates, --concurrency in flight (a throughput test)")
	fs.StringVar(&c.Fail, "fail", "", "firmware updates fail: download (link lost after 4 blocks, once; the retry resumes), "+
		"integrity (Update Result 5 for every complete package), update (Update Result 8 on Execute); comma-separated")
	fs.Float64Var(&c.FailRatio, "fail-ratio", 1, "share of the devices (0..1, spread evenly) that get --fail and --reboot-after-blocks")
	fs.Float64Var(&c.Loss, "loss", 0, "probability (0..1) that a datagram is lost, each way, on every device")
	fs.IntVar(&c.RebootAfterBlocks, "reboot-after-blocks", 0, "reboot (new port, no De-register) once this many blocks of a download arrived, once; 0: never")
	fs.StringVar(&c.Profile, "profile", "", "device profiles, comma-separated: "+profileHelp())
	fs.StringVar(&c.Bootstrap, "bootstrap", "", "bootstrap first from this LwM2M Bootstrap Server (coaps://HOST:PORT or coap://), then register with the DM server it gives; --server is then unused")
	fs.StringVar(&c.BootstrapPSKIdentity, "bootstrap-psk-identity", "", "bootstrap PSK identity; {ep} is replaced by each device's endpoint name")
	fs.StringVar(&c.BootstrapPSKKey, "bootstrap-psk-key", "", "bootstrap PSK, hex (the same for every device)")
	c.simTransport.flags(fs)
	if err := parseWithEnv(fs, args, getenv); err != nil {
		return c, err
	}
	if err := c.checkBootstrap(); err != nil {
		return c, err
	}
	if c.Count < 1 {
		return c, fmt.Errorf("sim: --count must be at least 1")
	}
	if math.IsNaN(c.FailRatio) || c.FailRatio < 0 || c.FailRatio > 1 {
		return c, fmt.Errorf("sim: --fail-ratio %v: want 0 to 1", c.FailRatio)
	}
	if math.IsNaN(c.Loss) || c.Loss < 0 || c.Loss >= 1 {
		return c, fmt.Errorf("sim: --loss %v: want 0 to less than 1", c.Loss)
	}
	if c.Updates < 0 {
		return c, fmt.Errorf("sim: --updates %d is negative", c.Updates)
	}
	if c.StdinUpdates && c.Updates < 1 {
		return c, errors.New("sim: --stdin-updates needs --updates 1 or more")
	}
	if c.RebootAfterBlocks < 0 {
		return c, fmt.Errorf("sim: --reboot-after-blocks %d is negative", c.RebootAfterBlocks)
	}
	c.faults.RebootAfterBlocks = c.RebootAfterBlocks
	for name := range strings.SplitSeq(c.Fail, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		set, ok := simFailures[name]
		if !ok {
			return c, fmt.Errorf("sim: --fail %q: want download, integrity or update", name)
		}
		set(&c.faults)
	}
	if err := lwm2mtest.ApplyProfiles(&lwm2mtest.DeviceConfig{}, c.Profile); err != nil {
		return c, fmt.Errorf("sim: --profile: %w", err)
	}
	if err := c.simTransport.check(); err != nil {
		return c, err
	}
	return c, nil
}

// profileHelp lists the device profiles for --help.
func profileHelp() string {
	var b strings.Builder
	for i, n := range lwm2mtest.ProfileNames() {
		if i > 0 {
			b.WriteString("; ")
		}
		p, _ := lwm2mtest.LookupProfile(n)
		fmt.Fprintf(&b, "%s (%s)", n, p.Doc)
	}
	return b.String()
}

// faulty reports whether device i of n gets the --fail faults: ratio of the devices, spread
// evenly over the fleet (0.25: devices 3, 7, 11, ...).
func faulty(i int, ratio float64) bool {
	return math.Floor(float64(i+1)*ratio) > math.Floor(float64(i)*ratio)
}

func sim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSimFlags(args, stderr, os.Getenv)
	if err != nil {
		return asUsage(err)
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	if cfg.Raw {
		return simRaw(ctx, cfg, stdout)
	}
	tmpl := lwm2mtest.DeviceConfig{
		Lifetime:        cfg.Lifetime,
		Binding:         cfg.Binding,
		LwM2MVersion:    cfg.Version,
		Manufacturer:    cfg.Manufacturer,
		Model:           cfg.Model,
		FirmwareVersion: cfg.Firmware,
		DeviceType:      cfg.DeviceType,
		Faults:          lwm2mtest.Faults{Loss: cfg.Loss},
		LocalAddr:       cfg.LocalAddr,
	}
	if err := lwm2mtest.ApplyProfiles(&tmpl, cfg.Profile); err != nil {
		return fmt.Errorf("sim: --profile: %w", err)
	}
	if err := cfg.simTransport.apply(&tmpl); err != nil {
		return err
	}
	if cfg.Bootstrap != "" {
		return simBootstrap(ctx, cfg, tmpl, stdout, logger)
	}
	fleet := lwm2mtest.NewFleet(cfg.Count, tmpl, func(i int) string { return fmt.Sprintf("%s%06d", cfg.Prefix, i) }, logger)
	defer fleet.Close()
	if cfg.faults != (lwm2mtest.Faults{}) {
		f := cfg.faults
		f.Loss = cfg.Loss
		for i, d := range fleet.Devices() {
			if faulty(i, cfg.FailRatio) {
				d.SetFaults(f)
			}
		}
	}
	start := time.Now()
	if _, err := fleet.Start(ctx, cfg.Server, cfg.Concurrency); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "registered %d devices in %s (%.0f registrations/s)\n", cfg.Count, took.Round(time.Millisecond), float64(cfg.Count)/took.Seconds())
	if cfg.StdinUpdates {
		return updatesOnLines(os.Stdin, stdout, func() (int, string, error) {
			n, err := updateFleet(ctx, fleet.Devices(), cfg.Updates, cfg.Concurrency)
			return n, "", err
		})
	}
	if cfg.Updates > 0 {
		start := time.Now()
		n, err := updateFleet(ctx, fleet.Devices(), cfg.Updates, cfg.Concurrency)
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "updated %d times in %s (%.0f updates/s)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	}
	if cfg.ExitAfterReg {
		return nil
	}
	<-ctx.Done()
	return nil
}

// updateFleet has every device send rounds registration Updates, with at most concurrency in
// flight, and returns how many were answered 2.04. It stops at the first failure.
func updateFleet(ctx context.Context, devices []*lwm2mtest.Device, rounds, concurrency int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		done     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	next := make(chan *lwm2mtest.Device)
	for range max(concurrency, 1) {
		wg.Go(func() {
			for d := range next {
				if err := d.Update(ctx); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("update %s: %w", d.Endpoint(), err); cancel() })
					continue
				}
				done.Add(1)
			}
		})
	}
feed:
	for range rounds {
		for _, d := range devices {
			select {
			case next <- d:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return int(done.Load()), firstErr
}

// simRaw is `lwota sim --raw`: the registration load of lwm2mtest.RegLoad, reported as the
// emulated fleet reports it.
func simRaw(ctx context.Context, cfg simConfig, stdout io.Writer) error {
	l, err := lwm2mtest.NewRegLoadAt(cfg.Server, cfg.LocalAddr, cfg.Count, func(i int) string { return fmt.Sprintf("%s%06d", cfg.Prefix, i) })
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	defer l.Close()
	start := time.Now()
	if _, err := l.Register(ctx, cfg.Concurrency, int(cfg.Lifetime/time.Second)); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "registered %d devices in %s (%.0f registrations/s)\n", cfg.Count, took.Round(time.Millisecond), float64(cfg.Count)/took.Seconds())
	if cfg.StdinUpdates {
		return updatesOnLines(os.Stdin, stdout, func() (int, string, error) {
			before := l.Reregistered()
			n, err := l.Update(ctx, cfg.Concurrency, cfg.Updates)
			return n, fmt.Sprintf("; re-registered %d after 4.04", l.Reregistered()-before), err
		})
	}
	if cfg.Updates > 0 {
		start := time.Now()
		n, err := l.Update(ctx, cfg.Concurrency, cfg.Updates)
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "updated %d times in %s (%.0f updates/s); re-registered %d after 4.04\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), l.Reregistered())
	}
	if !cfg.ExitAfterReg {
		<-ctx.Done()
	}
	return nil
}

// updatesOnLines runs one batch of Updates (update: how many were answered, and what to add to
// the line) for each line read from in and prints the batch's line, until in ends: the rounds
// of lwota bench, each started when the benchmark asks for it.
func updatesOnLines(in io.Reader, stdout io.Writer, update func() (int, string, error)) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		start := time.Now()
		n, suffix, err := update()
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "updated %d times in %s (%.0f updates/s)%s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), suffix)
	}
	return sc.Err()
}
