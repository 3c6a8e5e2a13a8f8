package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchRegistrationUpdatesProfile: --cpuprofile-updates writes the server's CPU profile of
// the first server's first Update round alone (issue 16: the steady state's CPU read apart from the registrations'),
// and cannot be combined with --cpuprofile, which profiles the whole run.
func TestBenchRegistrationUpdatesProfile(t *testing.T) {
	if _, err := parseBenchFlags([]string{"--cpuprofile", "a", "--cpuprofile-updates", "b"}, io.Discard, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("both profiles: err %v, want a refusal", err)
	}
	t.Setenv(readmeCLIEnv, "1") // the child `lwota sim` is this test binary acting as the CLI
	file := filepath.Join(t.TempDir(), "updates.prof")
	cfg := benchConfig{Devices: 20, Concurrency: 4, Rounds: 1, UpdateRounds: 1, Updates: 2, Client: "raw", UpdatesProfile: file}
	_, res, err := benchRounds(context.Background(), cfg, []benchTarget{{Name: "SQLite"}}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Updates[0][0].N; n != 40 {
		t.Fatalf("%d updates, want 40", n)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no profile of the Updates: %v", err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a pprof profile is gzipped
		t.Fatalf("the Updates' profile is not a pprof profile (%d bytes)", len(b))
	}
}
