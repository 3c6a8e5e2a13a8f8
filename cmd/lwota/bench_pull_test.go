package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

func TestBenchPull(t *testing.T) {
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, []int{4}, 500*time.Millisecond, nil, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "blocks/s") || strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}

// TestBenchPullRunProfiles: --cpuprofile-runs writes one CPU profile per run's measured window,
// plain CoAP and each DTLS suite, named by device count and run.
func TestBenchPullRunProfiles(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "pull")
	suites, err := lwm2mtest.ParseDTLSSuites("psk-ccm8")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, []int{4}, 500*time.Millisecond, suites, prefix); err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"plain", "dtls-psk-ccm8"} {
		b, err := os.ReadFile(prefix + ".4." + run)
		if err != nil {
			t.Fatalf("no profile of the %s run: %v", run, err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // a pprof profile is gzipped
			t.Fatalf("the %s run's profile is not a pprof profile (%d bytes)", run, len(b))
		}
	}
}
