package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestBenchBootstrap runs `lwota bench bootstrap` small: both rates and the ratio come out.
func TestBenchBootstrap(t *testing.T) {
	var out bytes.Buffer
	if err := BenchBootstrap(context.Background(), &out, io.Discard, 8, 4); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "registrations over DTLS: 8") || !strings.Contains(out.String(), "of the registrations/s") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
