package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
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
	if err := BenchPull(context.Background(), &out, []int{4}, 500*time.Millisecond, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "dtls:") || strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
