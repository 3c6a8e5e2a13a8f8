package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchFleet runs lwota bench fleet tiny: 200 idle devices from the spread loopback
// addresses, 50 campaign devices, 20 DTLS sessions that sleep after 200 ms. It checks that every
// figure is printed, not what it is.
func TestBenchFleet(t *testing.T) {
	t.Setenv(readmeCLIEnv, "1") // the child processes (this test binary) run as lwota
	var out, errs bytes.Buffer
	err := bench(context.Background(), []string{"fleet", "--devices", "200", "--campaign-devices", "50", "--samples", "20",
		"--dtls-sessions", "20", "--dtls-hibernate-after", "200ms", "--timeout", "10m", "--image-size", "4096", "--source", "127.79.0.1"}, &out, &errs)
	if err != nil {
		t.Fatalf("bench fleet: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{
		"200 devices registered in", "200 Updates in", "memory: 200 idle registered NoSec devices:",
		"memory: 20 idle DTLS PSK sessions, awake", "memory: 20 idle DTLS PSK sessions, asleep after 200ms",
		"read of one device p50", "campaign start p50", "campaign at 200 devices:", "of the single-device-update baseline",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the output:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
