package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
)

func TestBenchDTLS(t *testing.T) {
	var out bytes.Buffer
	if err := BenchDTLSHandshakes(context.Background(), &out, []int{2}, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "handshakes/s") || strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	if err := BenchPull(context.Background(), &out, []int{4}, 500*time.Millisecond, lwm2mtest.DTLSSuites()); err != nil {
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
