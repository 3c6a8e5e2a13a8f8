package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

func TestBenchPull(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1") // the devices' child process (this test binary) runs as lwota
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, pullBenchConfig{Devices: []int{4}, Duration: 500 * time.Millisecond, Rounds: 2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "blocks/s") || strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}

// TestBenchPullRunProfiles: --cpuprofile-runs writes one CPU profile per run's measured window,
// plain CoAP and each DTLS suite, named by device count and run, and --clients-cpuprofile the
// same for the devices' child process.
func TestBenchPullRunProfiles(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1")
	prefix := filepath.Join(t.TempDir(), "pull")
	clients := filepath.Join(t.TempDir(), "clients")
	suites, err := lwm2mtest.ParseDTLSSuites("psk-ccm8")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, pullBenchConfig{Devices: []int{4}, Duration: 500 * time.Millisecond, Rounds: 2, Suites: suites,
		Profiles: pullProfiles{runs: prefix, clients: clients}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{prefix, clients} {
		for _, run := range []string{"plain", "dtls-psk-ccm8"} {
			b, err := os.ReadFile(p + ".4." + run)
			if err != nil {
				t.Fatalf("no profile of the %s run: %v", run, err)
			}
			if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a pprof profile is gzipped
				t.Fatalf("the %s run's profile %s is not a pprof profile (%d bytes)", run, p, len(b))
			}
		}
	}
}

// TestBenchPullSplitsCPU: the devices run in a child process (lwota bench pull-clients), plain
// CoAP and DTLS alike, and each run's CPU per block is printed as the server's plus the
// devices', both measured over the same window. The UDP echo's clients run in a child process
// too: its CPU per round trip is split the same way, the clients' part reported by the child
// (in the bench's process it would be none).
func TestBenchPullSplitsCPU(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1")
	suites, err := lwm2mtest.ParseDTLSSuites("psk-ccm8,ecdhe-ccm8")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, pullBenchConfig{Devices: []int{4}, Duration: 500 * time.Millisecond, Rounds: 1, Suites: suites}); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if strings.Contains(out.String(), "first error") {
		t.Fatal("a run failed")
	}
	rows := 0
	for line := range strings.SplitSeq(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "4" && f[0] != "dtls") {
			continue
		}
		rows++
		var splits []int // the fields that are a split, srv+cli
		for i, s := range f {
			var a, b float64
			if n, _ := fmt.Sscanf(s, "%f+%f", &a, &b); n == 2 && strings.Contains(s, "+") {
				splits = append(splits, i)
			}
		}
		if want := map[bool]int{true: 2, false: 1}[f[0] == "4"]; len(splits) != want { // the plain row has the echo's too
			t.Fatalf("row %q: %d CPU splits, want %d", line, len(splits), want)
		}
		var total, srv, cli float64
		_, _ = fmt.Sscanf(f[splits[0]], "%f+%f", &srv, &cli)
		if _, err := fmt.Sscanf(f[splits[0]-1], "%f", &total); err != nil {
			t.Fatalf("no CPU per block before the split in %q", line)
		}
		if srv <= 0 || cli <= 0 || math.Abs(srv+cli-total) > 0.15 {
			t.Errorf("row %q: server %.1f + devices %.1f µs per block, total %.1f: want both measured, adding up", line, srv, cli, total)
		}
		if len(splits) == 2 {
			_, _ = fmt.Sscanf(f[splits[1]], "%f+%f", &srv, &cli)
			if srv <= 0 || cli <= 0 {
				t.Errorf("row %q: echo server %.1f + clients %.1f µs per round trip: want both measured, the clients in the child", line, srv, cli)
			}
		}
	}
	if rows != 3 {
		t.Fatalf("%d rows of runs, want 3 (plain, two DTLS suites)", rows)
	}
}

// TestBenchPullClientsFlags: the child runs either a pull (--uri) or echo clients (--echo), and
// the echo takes no cipher suite; anything else is refused before a socket opens.
func TestBenchPullClientsFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pullClients
	}{
		{"neither", pullClients{Devices: 1, Duration: time.Second}},
		{"both", pullClients{URI: "coap://127.0.0.1:1/x", Echo: "127.0.0.1:1", Devices: 1, Duration: time.Second}},
		{"echo with a cipher", pullClients{Echo: "127.0.0.1:1", Suite: "psk-ccm8", Devices: 1, Duration: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runPullClients(context.Background(), tc.p, strings.NewReader(""), &out); err == nil {
				t.Fatal("accepted")
			}
			if out.Len() != 0 {
				t.Fatalf("said %q before refusing", out.String())
			}
		})
	}
}

// TestBenchPullRounds runs `lwota bench pull --rounds 2 --dtls` against real servers: plain
// CoAP, the UDP echo and DTLS psk-ccm8 in rounds, each DTLS round beside a plain one, each plain
// one beside an echo round. Every pair is printed, and the printed ratios (the rows' and the
// rounds lines' medians) are the medians of the ratios of the printed pairs.
func TestBenchPullRounds(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1")
	var out, errOut bytes.Buffer
	args := []string{"--devices", "4", "--duration", "600ms", "--rounds", "2", "--dtls", "--cipher", "psk-ccm8"}
	if err := benchPullCommand(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	t.Log("\n" + out.String())
	if strings.Contains(out.String(), "first error") {
		t.Fatal("a round failed")
	}
	var plainRow, dtlsRow []string
	rounds := map[string][]string{} // by what they compare: "plain/echo", "psk-ccm8/plain"
	for line := range strings.SplitSeq(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "4":
			plainRow = f
		case len(f) > 1 && f[0] == "dtls":
			dtlsRow = f
		case len(f) > 1 && f[0] == "rounds":
			rounds[strings.TrimSuffix(f[1], ":")] = f[2:]
		}
	}
	if plainRow == nil || dtlsRow == nil {
		t.Fatal("no plain or no DTLS row")
	}
	medianOf := func(what string, want int) float64 {
		t.Helper()
		f, ok := rounds[what]
		if !ok {
			t.Fatalf("no rounds line for %s", what)
		}
		return checkRoundsLine(t, what, f, want)
	}
	echoMedian := medianOf("plain/echo", 2)
	dtlsMedian := medianOf("psk-ccm8/plain", 2)
	var ratio float64
	if _, err := fmt.Sscanf(plainRow[3], "%fx", &ratio); err != nil || math.Abs(ratio-echoMedian) > 0.006 {
		t.Errorf("plain row's ratio %q, the rounds line's median %.2f (%v)", plainRow[3], echoMedian, err)
	}
	if got := plainRow[len(plainRow)-2:]; len(got) != 2 {
		t.Errorf("plain row's pairs %v", got)
	}
	line := strings.Join(dtlsRow, " ")
	_, tail, _ := strings.Cut(line, "dtls psk-ccm8: ")
	if _, err := fmt.Sscanf(tail, "%f of plain CoAP's blocks/s", &ratio); err != nil || math.Abs(ratio-dtlsMedian) > 0.006 {
		t.Errorf("DTLS row's ratio %q, the rounds line's median %.2f (%v)", tail, dtlsMedian, err)
	}
}

// checkRoundsLine checks the fields of a rounds line after its "rounds what:": want pairs b/a,
// then "; median M of N pair ratios (lo to hi), ...; cpu ratio median C ...", M, lo and hi the
// median and range of the pairs' b/a as printed, C measured; it returns M.
func checkRoundsLine(t *testing.T, what string, f []string, want int) float64 {
	t.Helper()
	var ratios []float64
	for _, p := range f {
		var b, a float64
		if n, _ := fmt.Sscanf(strings.TrimSuffix(p, ";"), "%f/%f", &b, &a); n != 2 {
			break
		}
		if a <= 0 || b <= 0 {
			t.Fatalf("%s: pair %s: a rate of 0", what, p)
		}
		ratios = append(ratios, b/a)
	}
	if len(ratios) != want {
		t.Fatalf("%s: %d pairs printed, want %d: %v", what, len(ratios), want, f)
	}
	var m, lo, hi float64
	var n int
	rest := strings.Join(f[want:], " ")
	if _, err := fmt.Sscanf(rest, "median %f of %d pair ratios (%f to %f)", &m, &n, &lo, &hi); err != nil || n != want {
		t.Fatalf("%s: %q: %v, %d pairs", what, rest, err, n)
	}
	var cpu float64
	if _, tail, ok := strings.Cut(rest, "; cpu ratio median "); !ok {
		t.Errorf("%s: no CPU ratio of the pairs in %q", what, rest)
	} else if _, err := fmt.Sscanf(tail, "%f", &cpu); err != nil || cpu <= 0 {
		t.Errorf("%s: CPU ratio %q: want one measured (%v)", what, tail, err)
	}
	// The printed rates are rounded to a block/s, the ratios to 0.01.
	s := spreadOf(ratios)
	if math.Abs(s.Median-m) > 0.006 || math.Abs(s.Min-lo) > 0.006 || math.Abs(s.Max-hi) > 0.006 {
		t.Errorf("%s: printed median %.2f (%.2f to %.2f), the printed pairs give %.3f (%.3f to %.3f)", what, m, lo, hi, s.Median, s.Min, s.Max)
	}
	return m
}

// TestREADMEBenchPullExample: the README's example of lwota bench pull's output has the table
// header the bench prints, and its rounds lines are what the bench prints (every median the
// median of the pairs listed).
func TestREADMEBenchPullExample(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- bench pull example -->\n  ```text\n")
	example, _, ok2 := strings.Cut(after, "  ```")
	if !ok || !ok2 {
		t.Fatal("README.md has no bench pull example (<!-- bench pull example --> then a text block)")
	}
	header, checked := false, 0
	for line := range strings.SplitSeq(example, "\n") {
		if strings.TrimPrefix(line, "  ") == pullTableHeader() { // the list item's indent
			header = true
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "rounds" {
			continue
		}
		pairs := 0
		for _, p := range f[2:] {
			if !strings.Contains(p, "/") {
				break
			}
			pairs++
		}
		checkRoundsLine(t, strings.TrimSuffix(f[1], ":"), f[2:], pairs)
		checked++
	}
	if !header || checked < 2 {
		t.Fatalf("the example has the bench's table header: %v; %d rounds lines, want at least 2:\n%s", header, checked, example)
	}
}
