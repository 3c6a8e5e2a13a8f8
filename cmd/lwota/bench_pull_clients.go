package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

// The pull benchmark's devices run in a child process of their own (issue 16): the hidden
// `lwota bench pull-clients`, once per round (plain CoAP, DTLS or echo). In one process
// the server's garbage collector marked the devices' heap too (2,000 pion connections at 1,000
// DTLS devices, ~50 MB), which a deployed server never does, and the CPU per block could not
// be split between lwota and the load generator. Now the bench measures its own CPU (the
// server's) and the child reports its own (the devices'), over the same window: the child says
// "ready" once its sockets (and DTLS sessions) are up, waits for "go" on its stdin while the
// bench collects its garbage and starts the clock, pulls, says "ended" as its devices stop
// (before their connections close) and writes its report. Plain CoAP and DTLS devices run the
// same way, so the ratio of the two stays fair. The raw UDP echo that plain CoAP is compared
// with runs the same way too (--echo: its clients in the child, its server in the bench, as
// lwota's), so that pull ÷ echo compares two runs of the same process shape.

// Environment variables handing the certificate suite's device credential to the child.
const (
	pullCertEnv = "LWOTA_BENCH_PULL_CERT"
	pullKeyEnv  = "LWOTA_BENCH_PULL_KEY"
	pullCAEnv   = "LWOTA_BENCH_PULL_CA"
)

// pullClients is one child process's run: plain CoAP when Suite is empty, else DTLS with that
// suite (lwm2mtest.DTLSSuites), PSK devices as benchPSK(i), certificate devices presenting
// CertPEM/KeyPEM and trusting CAPEM. With Echo (and no URI) the child runs Devices raw UDP echo
// clients against the echo server at that host:port instead.
type pullClients struct {
	URI      string
	Echo     string
	Devices  int
	Duration time.Duration
	Window   time.Duration
	Suite    string
	// CPUProfile: the child writes the CPU profile of its measured window (go to ended) to
	// this file (lwota bench pull --clients-cpuprofile).
	CPUProfile string

	CertPEM, KeyPEM, CAPEM []byte
}

// pullClientsReport is the child's last line after "report ".
type pullClientsReport struct {
	Pull lwm2mtest.PullReport `json:",omitzero"`
	Echo float64              `json:",omitempty"` // round trips/s of an echo run
	CPU  time.Duration        // the child's CPU from go to ended
}

// run starts the child, calls cpu.start when its devices are ready and cpu.end when they
// stopped, and returns their report; cpu.clients is the child's CPU over that window.
func (p pullClients) run(ctx context.Context, cpu *pullCPU) (lwm2mtest.PullReport, error) {
	r, err := p.child(ctx, cpu)
	return r.Pull, err
}

// echo is run for an echo run (p.Echo set): it returns the round trips per second.
func (p pullClients) echo(ctx context.Context, cpu *pullCPU) (float64, error) {
	r, err := p.child(ctx, cpu)
	if err != nil {
		return 0, fmt.Errorf("echo: %w", err)
	}
	return r.Echo, nil
}

// child runs the child process and returns its report.
func (p pullClients) child(ctx context.Context, cpu *pullCPU) (pullClientsReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return pullClientsReport{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "bench", "pull-clients", "--uri", p.URI, "--echo", p.Echo, "--devices", fmt.Sprint(p.Devices),
		"--duration", p.Duration.String(), "--window", p.Window.String(), "--cipher", p.Suite, "--cpuprofile", p.CPUProfile)
	cmd.Env = append(os.Environ(), pullCertEnv+"="+string(p.CertPEM), pullKeyEnv+"="+string(p.KeyPEM), pullCAEnv+"="+string(p.CAPEM))
	var errOut bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &errOut, n: 4096}
	// The child ends when its stdin closes: when this run returns, or this process ends however
	// it ends, so that no device outlives the bench.
	in, err := cmd.StdinPipe()
	if err != nil {
		return pullClientsReport{}, err
	}
	defer in.Close()
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return pullClientsReport{}, err
	}
	if err := cmd.Start(); err != nil {
		return pullClientsReport{}, fmt.Errorf("pull clients: %w", err)
	}
	rep, err := p.talk(bufio.NewReader(outPipe), in, cpu)
	_ = in.Close()
	if err != nil {
		cancel() // kills a child that may not be listening any more
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return rep, fmt.Errorf("pull clients: %w (%s)", err, strings.TrimSpace(errOut.String()))
	}
	return rep, nil
}

// talk follows the child's lines: ready, ended, report.
func (p pullClients) talk(out *bufio.Reader, in io.Writer, cpu *pullCPU) (pullClientsReport, error) {
	line := func(want string) (string, error) {
		l, err := out.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("child ended before %q: %w", want, err)
		}
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), want)
		if !ok {
			return "", fmt.Errorf("child said %q, want %q", strings.TrimSpace(l), want)
		}
		return strings.TrimSpace(rest), nil
	}
	if _, err := line("ready"); err != nil {
		return pullClientsReport{}, err
	}
	cpu.start()
	if _, err := io.WriteString(in, "go\n"); err != nil {
		cpu.end()
		return pullClientsReport{}, err
	}
	_, err := line("ended")
	cpu.end()
	if err != nil {
		return pullClientsReport{}, err
	}
	js, err := line("report")
	if err != nil {
		return pullClientsReport{}, err
	}
	var r pullClientsReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return pullClientsReport{}, fmt.Errorf("child's report: %w", err)
	}
	cpu.clients = r.CPU
	return r, nil
}

// benchPullClients is the hidden `lwota bench pull-clients`: the devices of one pull run of
// lwota bench pull (above). It collects garbage as lwota serve does, as the bench does.
func benchPullClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench pull-clients", stderr)
	uri := fs.String("uri", "", "the image's coap:// or coaps:// URI")
	echo := fs.String("echo", "", "instead of pulling, run raw UDP echo clients against the echo server at this host:port")
	devices := fs.Int("devices", 16, "devices")
	duration := fs.Duration("duration", 5*time.Second, "how long the devices pull")
	window := fs.Duration("window", time.Second, "rate window")
	cipher := fs.String("cipher", "", "DTLS cipher suite (psk-ccm8, psk-gcm, ecdhe-ccm8); empty: plain CoAP")
	cpuProfile := fs.String("cpuprofile", "", "write the CPU profile of the measured window (go to ended) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runPullClients(ctx, pullClients{URI: *uri, Echo: *echo, Devices: *devices, Duration: *duration, Window: *window, Suite: *cipher, CPUProfile: *cpuProfile,
		CertPEM: []byte(os.Getenv(pullCertEnv)), KeyPEM: []byte(os.Getenv(pullKeyEnv)), CAPEM: []byte(os.Getenv(pullCAEnv))},
		os.Stdin, stdout)
}

// runPullClients runs p's devices, reading "go" from stdin and writing ready, ended and the
// report to stdout; stdin's end ends the run.
func runPullClients(ctx context.Context, p pullClients, stdin io.Reader, stdout io.Writer) error {
	if (p.URI == "") == (p.Echo == "") {
		return errors.New("bench pull-clients: want either --uri or --echo")
	}
	if p.Echo != "" && p.Suite != "" {
		return errors.New("bench pull-clients: --cipher is for --uri, the echo is plain UDP")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	startGCHeadroom(ctx, defaultGCHeadroom, os.Getenv)
	in := bufio.NewReader(stdin)
	var t0, t1 time.Duration
	// The devices' profile covers the window their CPU is measured over, as the server's does
	// (pullCPU): the handshakes and the teardown are not the pull's.
	prof := pullCPU{profile: p.CPUProfile}
	started := func() {
		fmt.Fprintln(stdout, "ready")
		if l, err := in.ReadString('\n'); err != nil || strings.TrimSpace(l) != "go" {
			cancel() // the bench ended
		}
		go func() { _, _ = io.Copy(io.Discard, in); cancel() }()
		prof.start() // collects the sockets' and handshakes' garbage first, as the bench does with its own
		t0 = processCPU()
	}
	ended := func() {
		t1 = processCPU()
		_ = prof.stopProfile()
		fmt.Fprintln(stdout, "ended")
	}
	cfg := lwm2mtest.PullConfig{URI: p.URI, Devices: p.Devices, Duration: p.Duration, Window: p.Window, Started: started, Ended: ended}
	var (
		r   pullClientsReport
		err error
	)
	switch {
	case p.Echo != "":
		r.Echo, err = lwm2mtest.EchoLoad(ctx, lwm2mtest.EchoConfig{Addr: p.Echo, Clients: p.Devices, Duration: p.Duration,
			Started: started, Ended: ended})
	case p.Suite == "":
		r.Pull, err = lwm2mtest.PullLoad(ctx, cfg)
	default:
		var client lwm2mtest.DTLSLoadClient
		if client, err = p.dtlsClient(); err != nil {
			return err
		}
		r.Pull, err = lwm2mtest.PullLoadDTLSDial(ctx, cfg, client.Dial)
	}
	if err := errors.Join(err, prof.stopProfile()); err != nil {
		return err
	}
	r.CPU = t1 - t0
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "report %s\n", js)
	return err
}

// dtlsClient is how p's devices handshake.
func (p pullClients) dtlsClient() (lwm2mtest.DTLSLoadClient, error) {
	suites, err := lwm2mtest.ParseDTLSSuites(p.Suite)
	if err != nil {
		return lwm2mtest.DTLSLoadClient{}, err
	}
	c := lwm2mtest.DTLSLoadClient{Suite: suites[0], PSK: benchPSK}
	if !c.Suite.Certificate {
		return c, nil
	}
	if c.Certificate, err = tls.X509KeyPair(p.CertPEM, p.KeyPEM); err != nil {
		return c, fmt.Errorf("device certificate: %w", err)
	}
	c.RootCAs = x509.NewCertPool()
	if !c.RootCAs.AppendCertsFromPEM(p.CAPEM) {
		return c, errors.New("no CA certificate")
	}
	return c, nil
}

// limitedWriter keeps the first n bytes written to w and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
