package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchFleet runs lwota bench fleet tiny: 200 idle devices from the spread loopback
// addresses, 50 campaign devices, 20 DTLS sessions from two client processes that sleep after
// 200 ms. It checks that every figure is printed, not what it is, and that no child process is
// left once the bench returned.
func TestBenchFleet(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1") // the child processes (this test binary) run as lwota
	var out, errs bytes.Buffer
	err := bench(context.Background(), []string{"fleet", "--devices", "200", "--campaign-devices", "50", "--samples", "20", "--start-devices", "100",
		"--dtls-sessions", "20", "--dtls-per-child", "10", "--dtls-hibernate-after", "200ms", "--timeout", "10m", "--image-size", "4096", "--source", "127.79.0.1"}, &out, &errs)
	if err != nil {
		t.Fatalf("bench fleet: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{
		"200 devices registered in", "200 Updates in", "memory: 200 idle registered NoSec devices:",
		"dtls: client process 2 of 2", "dtls: 20 sessions from 2 client processes in",
		"memory: 20 idle DTLS PSK sessions, awake", "memory: 20 idle DTLS PSK sessions, asleep after 200ms",
		"memory: after the 20 DTLS sessions and their endpoint ended:", "rate); re-registered 0 after 4.04",
		"read of one device p50", "campaign start p50", "campaign start of 100 devices p50", "(2 starts), CPU per start p50",
		"campaign at 200 devices:", "of the single-device-update baseline",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the output:\n%s", want, out.String())
		}
	}
	pids := childPIDs(out.String())
	if len(pids) != 3 {
		t.Errorf("%d child pids in the output, want 3 (the idle fleet and two DTLS client processes):\n%s", len(pids), out.String())
	}
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("child process %d still runs after the bench returned", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Log("\n" + out.String())
}

// TestBenchFleetChildrenEndWithIt kills lwota bench fleet (this test binary as lwota) with
// SIGKILL while its child processes hold their devices or DTLS sessions: nothing in it runs to
// kill them, and they must end by themselves (their stdin, a pipe from the bench, closes).
func TestBenchFleetChildrenEndWithIt(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		killAt string // the output line that has the bench kill
		pids   int
	}{
		{"dtls clients", []string{"--devices", "1", "--dtls-sessions", "30", "--dtls-per-child", "10", "--dtls-hibernate-after", "1h", "--source", "127.79.2.1"},
			"memory: 30 idle DTLS PSK sessions, awake", 3},
		{"idle fleet", []string{"--devices", "20", "--samples", "1000000", "--source", "127.79.3.1"},
			"memory: 20 idle registered NoSec devices", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			args := append([]string{"bench", "fleet", "--campaign-devices", "0", "--timeout", "5m"}, tc.args...)
			cmd := exec.CommandContext(ctx, self, args...)
			// Killed, the bench leaves its data directory behind: in the test's.
			cmd.Env = append(os.Environ(), readmeCLIEnv+"=1", "TMPDIR="+t.TempDir())
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			var out strings.Builder
			lines := bufio.NewScanner(stdout)
			for !strings.Contains(out.String(), tc.killAt) {
				if !lines.Scan() {
					t.Fatalf("bench fleet ended before %q: %v\n%s", tc.killAt, lines.Err(), out.String())
				}
				out.WriteString(lines.Text() + "\n")
			}
			pids := childPIDs(out.String())
			if len(pids) != tc.pids {
				t.Fatalf("%d child pids in the output, want %d:\n%s", len(pids), tc.pids, out.String())
			}
			for _, pid := range pids {
				if !running(pid) {
					t.Fatalf("child process %d ended before the bench was killed", pid)
				}
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			for _, pid := range pids {
				for running(pid) {
					if ctx.Err() != nil {
						t.Errorf("child process %d still runs after its bench was killed", pid)
						_ = syscall.Kill(pid, syscall.SIGKILL)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// childPIDs are the pids bench fleet says its child processes have.
func childPIDs(out string) []int {
	var pids []int
	for _, m := range regexp.MustCompile(`\(pid (\d+)\)`).FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	return pids
}

// running reports whether process pid exists and is not a zombie (a child of a killed bench
// whose new parent has not reaped it yet has ended all the same).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
