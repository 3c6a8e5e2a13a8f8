package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/lwm2mtest"
)

// TestBenchDTLS: the handshake benchmark runs lwota, bare pion and libcoap servers in child
// processes and prints lwota's CPU per handshake as ratios to both; the pull benchmark runs
// over DTLS.
func TestBenchDTLS(t *testing.T) {
	var out bytes.Buffer
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	memprofile := filepath.Join(t.TempDir(), "mem.pprof")
	cfg := dtlsBenchConfig{Clients: []int{2}, Duration: 500 * time.Millisecond, Libcoap: sysdeps.Require(t, "coap-server-openssl"),
		Profiles: benchProfiles{mem: memprofile}, self: dtlsBenchSelf{exe: exe, env: []string{readmeCLIEnv + "=1"}}}
	if err := BenchDTLSHandshakes(context.Background(), &out, os.Stderr, cfg); err != nil {
		t.Fatal(err)
	}
	// --memprofile: lwota's server child wrote its allocation profile (gzipped protobuf) as it stopped.
	if b, err := os.ReadFile(memprofile); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("allocation profile: %d bytes, %v", len(b), err)
	}
	for _, want := range []string{" lwota ", " pion ", " libcoap ", "of libcoap+OpenSSL's", "of bare pion's"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in output:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "first error") || strings.Contains(out.String(), "n/a") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
	out.Reset()
	if err := BenchPull(context.Background(), &out, pullBenchConfig{Devices: []int{4}, Duration: 500 * time.Millisecond, Rounds: 1, Suites: lwm2mtest.DTLSSuites()}); err != nil {
		t.Fatal(err)
	}
	for _, suite := range lwm2mtest.DTLSSuites() {
		if !strings.Contains(out.String(), "dtls "+suite.Name+":") {
			t.Fatalf("no run with %s; output:\n%s", suite.Name, out.String())
		}
	}
	if strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
