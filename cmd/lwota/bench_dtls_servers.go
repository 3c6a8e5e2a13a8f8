package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// The servers `lwota bench dtls` compares, each in a child process of its own so that the CPU
// it spends is its own and not the emulated clients' (which run in the benchmark's process):
//
//   - lwota: the transport's DTLS Endpoint with lwota's defaults (what `lwota serve` runs);
//   - pion: a bare pion/dtls server (dtls.Listen, the same PSK suite and cookie exchange, each
//     connection read until it closes), what go-coap's DTLS server is built on;
//   - libcoap: libcoap's coap-server-openssl with a PSK (OpenSSL's DTLS).
//
// The lwota and pion servers are this binary started as `lwota bench dtls --serve KIND`.

// dtlsBenchServer is one server under test, running.
type dtlsBenchServer struct {
	name string
	addr string // host:port of its DTLS socket
	pid  int
	stop func()
}

// cpu is the server process's CPU time so far.
func (s *dtlsBenchServer) cpu() time.Duration { return procCPU(s.pid) }

// dtlsBenchSelf is how the benchmark starts this binary: the executable and extra environment
// (tests run the test binary, which acts as lwota only when told so).
type dtlsBenchSelf struct {
	exe string
	env []string
}

// startDTLSBenchChild starts this binary as the server kind ("lwota" or "pion") and waits for
// the address it listens on.
func startDTLSBenchChild(ctx context.Context, self dtlsBenchSelf, kind string, prof benchProfiles, stderr io.Writer) (*dtlsBenchServer, error) {
	args := []string{"bench", "dtls", "--serve", kind}
	if prof.cpu != "" {
		args = append(args, "--cpuprofile", prof.cpu)
	}
	if prof.mem != "" {
		args = append(args, "--memprofile", prof.mem)
	}
	cmd := exec.CommandContext(ctx, self.exe, args...)
	cmd.Env = append(os.Environ(), self.env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe() // closing it asks the child to stop (and write its profile)
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench dtls: start %s server: %w", kind, err)
	}
	stop := func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		stop()
		return nil, fmt.Errorf("bench dtls: %s server: no address (%q): %v", kind, line, err)
	}
	return &dtlsBenchServer{name: kind, addr: addr, pid: cmd.Process.Pid, stop: stop}, nil
}

// startLibcoapDTLS starts coap-server-openssl with the benchmark's key (any identity) and waits
// until a handshake succeeds. libcoap listens for DTLS on its CoAP port + 1.
func startLibcoapDTLS(ctx context.Context, name string, stderr io.Writer) (*dtlsBenchServer, error) {
	path := name // a path is used as given; a name is found where make deps installs it
	if !strings.Contains(path, "/") {
		var err error
		if path, err = sysdeps.Lookup(path); err != nil {
			return nil, err
		}
	}
	port, err := freeUDPPortPair()
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(runCtx, path, "-A", "127.0.0.1", "-p", strconv.Itoa(port), "-k", string(benchPSKKey), "-v", "0")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	s := &dtlsBenchServer{name: "libcoap", addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)), pid: cmd.Process.Pid,
		stop: func() { cancel(); _ = cmd.Wait() }}
	// No readiness signal: handshake until one succeeds.
	for deadline := time.Now().Add(10 * time.Second); ; {
		hctx, hcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		rep, err := lwm2mtest.DTLSHandshakes(hctx, s.addr, 1, 400*time.Millisecond, benchPSK)
		hcancel()
		if err == nil && rep.Handshakes > 0 {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("bench dtls: %s does not handshake: %s", name, rep.FirstError)
		}
	}
}

// freeUDPPortPair finds a port p on loopback with p and p+1 free (libcoap binds both).
func freeUDPPortPair() (int, error) {
	for range 50 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		b, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		a.Close()
		if err == nil {
			b.Close()
			return p, nil
		}
	}
	return 0, errors.New("bench dtls: no free pair of UDP ports")
}

// serveDTLSBenchChild is `lwota bench dtls --serve KIND`: it serves until its stdin closes,
// having printed "listening ADDR" on stdout.
func serveDTLSBenchChild(ctx context.Context, kind string, prof benchProfiles, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	if prof.mem != "" {
		// Sampled finely enough that a handshake's few hundred small allocations count.
		runtime.MemProfileRate = 4096
		defer func() {
			if err := writeAllocProfile(prof.mem); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	if prof.cpu != "" {
		f, err := os.Create(prof.cpu)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	switch kind {
	case "lwota":
		// The process collects as `lwota serve` does: with its default GC headroom (unless GOGC is set).
		startGCHeadroom(ctx, defaultGCHeadroom, os.Getenv)
		addr, stop, err := serveBenchDTLS(ctx, nil)
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(stdout, "listening %s\n", addr)
		<-ctx.Done()
		return nil
	case "pion":
		return servePionDTLS(ctx, stdout)
	default:
		return fmt.Errorf("bench dtls: --serve %q: want lwota or pion", kind)
	}
}

// benchProfiles names the profile files of a benchmark's server child ("": none).
type benchProfiles struct{ cpu, mem string }

// writeAllocProfile writes the process's allocation profile (every allocation sampled since
// it started, alloc_space and alloc_objects) to path.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench dtls: memprofile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("bench dtls: memprofile: %w", err)
	}
	return f.Close()
}

// servePionDTLS is the bare pion/dtls server (lwm2mtest.ServeBareDTLS: only server/transport and
// the simulator speak pion) with a PSK lookup that knows every bench-N identity.
func servePionDTLS(ctx context.Context, stdout io.Writer) error {
	return lwm2mtest.ServeBareDTLS(ctx, stdout, func(identity []byte) ([]byte, error) {
		return benchPSKs{}.PSK(ctx, string(identity))
	})
}
