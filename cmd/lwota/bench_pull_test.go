package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestBenchPull(t *testing.T) {
	var out bytes.Buffer
	if err := BenchPull(context.Background(), &out, []int{4}, 500*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "blocks/s") || strings.Contains(out.String(), "first error") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
