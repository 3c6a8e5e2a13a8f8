package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lwota/lwota/firmware/transfer"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/blobstore"
)

// pullBenchImageSize is the image the pull benchmark serves: 1 MiB, 1024 blocks of 1 KiB.
const pullBenchImageSize = 1 << 20

// pullBenchConfig is a run of lwota bench pull.
type pullBenchConfig struct {
	Devices []int // the device counts, one after the other
	// Duration is how long each DTLS suite pulls at each device count, in Rounds rounds; plain
	// CoAP and the echo run as many rounds of the same length, one beside each DTLS round
	// (bench_pull_fair.go). Without Suites, plain CoAP and the echo pull for Duration each.
	Duration time.Duration
	Rounds   int
	Suites   []lwm2mtest.DTLSSuite // none: no DTLS
	Profiles pullProfiles
}

// BenchPull measures firmware pull throughput (lwota bench pull): a transport.Endpoint with the
// firmware/transfer Server on loopback serves a 1 MiB image from a temporary directory blob
// store, and for each concurrency in cfg.Devices a raw UDP echo baseline, PullLoad, and for each
// of cfg.Suites the pull over DTLS with that cipher suite (a DTLS Endpoint serving the same
// Server, bench_pull_dtls.go) run in alternating rounds (bench_pull_fair.go): plain CoAP is
// reported as a ratio to the echo, DTLS as a ratio to plain CoAP, each the median of the ratios
// of rounds run side by side. The devices run in a child process (bench_pull_clients.go), and
// so do the echo's clients: the CPU per block (per round trip) counts both processes and is
// printed split. With a profiles prefix, the first round of each kind's measured window is
// profiled on its own into prefix.<devices>.plain and prefix.<devices>.dtls-<suite> (the echo
// baseline, the handshakes and the teardown left out); profiles.clients does the same for the
// devices' child process.
func BenchPull(ctx context.Context, w io.Writer, cfg pullBenchConfig) error {
	suites, d := cfg.Suites, cfg.Duration
	tmp, err := os.MkdirTemp("", "lwota-bench-pull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	blobs, err := blobstore.OpenDir(tmp, nil)
	if err != nil {
		return err
	}
	img := make([]byte, pullBenchImageSize)
	_, _ = rand.Read(img)
	sum := sha256.Sum256(img)
	grant := transfer.Grant{BlobKey: "images/sha256/" + hex.EncodeToString(sum[:]), Size: int64(len(img)), SHA256: hex.EncodeToString(sum[:])}
	if _, err := blobs.Put(ctx, grant.BlobKey, bytes.NewReader(img)); err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	srv := transfer.New(transfer.DefaultConfig(), transfer.NewTokens(secret, nil), benchGrants{grant}, blobs, nil, nil)

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ep, err := transport.New(pc, transport.UDP, srv, transport.DefaultConfig(), nil, nil)
	if err != nil {
		pc.Close()
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- ep.Serve(sctx) }()
	defer func() { cancel(); <-served }()

	uri, err := srv.URI("coap://"+pc.LocalAddr().String(), "bench", 24*time.Hour)
	if err != nil {
		return err
	}
	// The echo baseline's server runs in this process beside lwota's, its clients in a child
	// process as the pull's devices do (bench_pull_fair.go).
	echoSrv, err := lwm2mtest.ListenEcho()
	if err != nil {
		return err
	}
	defer echoSrv.Close()
	var (
		secureURI string
		dtlsSrv   *benchDTLSServer
	)
	if len(suites) > 0 {
		if dtlsSrv, err = serveBenchPullDTLS(ctx, srv); err != nil {
			return err
		}
		defer dtlsSrv.stop()
		if secureURI, err = srv.URI("coaps://"+dtlsSrv.addr, "bench", 24*time.Hour); err != nil {
			return err
		}
	}
	// The process collects as `lwota serve` does, plain CoAP and DTLS runs alike.
	gcCtx, gcStop := context.WithCancel(ctx)
	defer gcStop()
	gc := "GC headroom " + formatByteSize(defaultGCHeadroom) + " as lwota serve"
	if !startGCHeadroom(gcCtx, defaultGCHeadroom, os.Getenv) {
		gc = "GOGC set: no GC headroom"
	}
	slot := roundOf(d, cfg.Rounds).Round(time.Millisecond) // as printed; the rounds run roundOf
	fmt.Fprintf(w, "firmware pull: %d KiB image, 1024-byte blocks, %v per run; the devices run in a child process (lwota bench pull-clients), "+
		"the servers in this one, the UDP echo's clients in a child process as well; cpu us/blk counts both, srv+cli splits it (server + devices), "+
		"echo srv+cli the echo's µs per round trip the same way; %s in both\n",
		pullBenchImageSize>>10, d, gc)
	if len(suites) == 0 {
		fmt.Fprintf(w, "echo and pull alternate in %d pairs of rounds of %v per device count (echo, pull, pull, echo, ...) so that load from outside hits both alike; "+
			"ratio: median of the pairs' blocks/s ÷ echo rt/s; cpu ratio: echo CPU per round trip ÷ pull CPU per block\n", cfg.Rounds, slot)
	} else {
		fmt.Fprintf(w, "rounds of %v: each DTLS suite pulls in %d rounds per device count, each beside a plain CoAP round, each plain round beside an echo round "+
			"(dtls, plain, echo, then echo, plain, dtls, ..., the suites taking turns) so that load from outside hits each pair alike; "+
			"ratio: median of the pairs' blocks/s ÷ echo rt/s; dtls: median of the pairs' dtls ÷ plain blocks/s; cpu ratio: echo CPU per round trip ÷ pull CPU per block; "+
			"each rounds line lists its pairs' rates (dtls/plain, plain/echo), the median of their ratios with the range, and the median of their CPU ratios (plain's CPU per block ÷ dtls's; echo's per round trip ÷ plain's per block)\n",
			slot, cfg.Rounds)
	}
	fmt.Fprintln(w, pullTableHeader())
	for _, n := range cfg.Devices {
		// With --cpuprofile-runs the first round of each kind is profiled (a CPU profile cannot
		// be appended to across rounds).
		run, err := interleavePull(ctx, n, d, cfg.Rounds, len(suites), echoSrv.Addr(),
			func(ctx context.Context, r pullRound, slot time.Duration, first bool, cpu *pullCPU) (lwm2mtest.PullReport, error) {
				if r.Kind == roundDTLS {
					suite := suites[r.Suite]
					clientsProfile := ""
					if first {
						cpu.profile, clientsProfile = runProfile(cfg.Profiles.runs, n, "dtls-"+suite.Name), runProfile(cfg.Profiles.clients, n, "dtls-"+suite.Name)
					}
					return pullDTLSRound(ctx, dtlsSrv, secureURI, suite, n, slot, clientsProfile, cpu) // bench_pull_dtls.go
				}
				clientsProfile := ""
				if first {
					cpu.profile, clientsProfile = runProfile(cfg.Profiles.runs, n, "plain"), runProfile(cfg.Profiles.clients, n, "plain")
				}
				rep, err := pullClients{URI: uri, Devices: n, Duration: slot, Window: slot, CPUProfile: clientsProfile}.run(ctx, cpu) // bench_pull_clients.go
				return rep, errors.Join(err, cpu.stopProfile())
			})
		if err != nil {
			return err
		}
		rep := run.pull.rep
		pairs := make([]string, len(run.ratios))
		for i, r := range run.ratios {
			pairs[i] = strconv.FormatFloat(r, 'f', 2, 64)
		}
		fmt.Fprintf(w, "%8d %12.0f %12.0f %6.2fx %8.2fx %9.2f %10.1f %11s %12s %8d %8d %7d MiB %7d MiB  %s\n",
			n, run.echo, rep.BlocksPerSec, run.ratio(), run.cpuRatio(), rep.Decline(), run.pullCPUPerOp(),
			cpuSplit(run.serverCPUPerOp(), run.pullCPUPerOp()), cpuSplit(run.echoServerCPUPerOp(), run.echoCPUPerOp()), rep.Retransmits, rep.Errors,
			run.pull.rssStart>>20, run.pull.rssEnd>>20, strings.Join(pairs, " "))
		if rep.FirstError != "" {
			fmt.Fprintf(w, "%8s first error: %s\n", "", rep.FirstError)
		}
		printPullDiag(w, rep)
		fmt.Fprintln(w, roundsLine("plain/echo", run.echoes, run.plains, run.plainCPUs, run.echoCPUs))
		for i, suite := range suites {
			printPullDTLS(w, suite, run.dtls[i], run.echo)
		}
	}
	return nil
}

// pullTableHeader is the header of the table of runs.
func pullTableHeader() string {
	return fmt.Sprintf("%8s %12s %12s %7s %9s %9s %10s %11s %12s %8s %8s %10s %10s  %s",
		"devices", "echo rt/s", "blocks/s", "ratio", "cpu ratio", "decline", "cpu us/blk", "srv+cli", "echo srv+cli", "retrans", "errors", "rss start", "rss end",
		"pairs (blocks/s ÷ echo rt/s)")
}

// printPullDiag prints where a run's retransmissions may have come from (lwm2mtest.PullReport):
// devices locked out (fewest blocks far below the median), the first requests' burst, or a
// process that did not run (no answer for a second, the devices' ticker late).
func printPullDiag(w io.Writer, rep lwm2mtest.PullReport) {
	fmt.Fprintf(w, "%8s blocks per device least %d, median %d; first requests retransmitted %d, answered within %v; "+
		"longest without an answer %v, devices' process late %v\n", "",
		rep.BlocksLeast, rep.BlocksMedian, rep.FirstRetransmits, rep.FirstAnswerMax.Round(time.Millisecond),
		rep.Stalled.Round(time.Millisecond), rep.Late.Round(time.Millisecond))
}

// pullProfiles are the CPU profile file prefixes of lwota bench pull's runs (runProfile names
// the files): runs for the servers' process (--cpuprofile-runs), clients for the devices' child
// process (--clients-cpuprofile); "" profiles nothing.
type pullProfiles struct {
	runs, clients string
}

// cpuSplit prints the server's and the devices' CPU per block of a run whose both sides used
// total µs per block.
func cpuSplit(server, total float64) string {
	return fmt.Sprintf("%.1f+%.1f", server, total-server)
}

// benchGrants grants every job the benchmark image.
type benchGrants struct{ g transfer.Grant }

func (b benchGrants) Grant(context.Context, string, transport.Peer) (transfer.Grant, error) {
	return b.g, nil
}

// pullCPU is the process CPU of one pull run, measured the same way for plain CoAP and DTLS:
// from the moment the devices start (their sockets made, their DTLS handshakes done, and the
// garbage of that collected first, so the run does not pay for it) to the moment they stop
// (before their connections close: a DTLS session's teardown is not the pull's).
// With profile set, the window is CPU-profiled into that file (lwota bench pull --cpuprofile-runs;
// the profiler's own signals then count in the window's CPU too).
type pullCPU struct {
	t0, t1  time.Duration // this process's (the server's)
	clients time.Duration // the devices' child process's over the same window (bench_pull_clients.go)
	profile string
	f       *os.File
	err     error
}

func (c *pullCPU) start() {
	runtime.GC()
	if c.profile != "" {
		f, err := os.Create(c.profile)
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			} else {
				c.f = f
			}
		}
		c.err = err
	}
	c.t0 = processCPU()
}

func (c *pullCPU) end() {
	c.t1 = processCPU()
	_ = c.stopProfile()
}

// used is the CPU of both sides; server that of this process alone.
func (c *pullCPU) used() time.Duration   { return c.server() + c.clients }
func (c *pullCPU) server() time.Duration { return c.t1 - c.t0 }

// stopProfile ends the window's profile if it still runs (the run failed before its end) and
// reports whether it could be written.
func (c *pullCPU) stopProfile() error {
	if c.f != nil {
		pprof.StopCPUProfile()
		if err := c.f.Close(); c.err == nil {
			c.err = err
		}
		c.f = nil
	}
	if c.err != nil {
		return fmt.Errorf("cpu profile %s: %w", c.profile, c.err)
	}
	return nil
}

// runProfile names the profile file of one run, "" without a prefix.
func runProfile(prefix string, devices int, run string) string {
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf("%s.%d.%s", prefix, devices, run)
}

// processCPU is the user and system CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmRSS is the resident set size from /proc/self/status (0 where there is none).
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
