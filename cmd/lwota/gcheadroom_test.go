package main

import (
	"context"
	"io"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// TestGCPercentFor: the percent puts the next GC at max(live × 2, live + headroom), within
// [base, gcMaxPercent].
func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name           string
		live, headroom uint64
		want           int
	}{
		{"small heap", 5 * mib, 64 * mib, 1280},
		{"headroom equals live", 64 * mib, 64 * mib, 100},
		{"fleet size", 240 * mib, 64 * mib, 100},
		{"just above base", 60 * mib, 64 * mib, 106},
		{"tiny heap capped", 100 << 10, 64 * mib, gcMaxPercent},
		{"no collection yet", 0, 64 * mib, 100},
		{"huge headroom no overflow", 1 * mib, 1 << 62, gcMaxPercent},
		{"headroom off", 5 * mib, 0, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcPercentFor(tc.live, tc.headroom, 100); got != tc.want {
				t.Errorf("gcPercentFor(%d, %d, 100) = %d, want %d", tc.live, tc.headroom, got, tc.want)
			}
		})
	}
}

// TestGCPercentChanged: moves of 5% or less are left alone.
func TestGCPercentChanged(t *testing.T) {
	cases := []struct {
		cur, next int
		want      bool
	}{
		{100, 100, false}, {100, 105, false}, {100, 106, true}, {1280, 1250, false}, {1280, 1200, true}, {1280, 100, true}, {100, 99, false},
	}
	for _, tc := range cases {
		if got := gcPercentChanged(tc.cur, tc.next); got != tc.want {
			t.Errorf("gcPercentChanged(%d, %d) = %v, want %v", tc.cur, tc.next, got, tc.want)
		}
	}
}

// gcPercent is the runtime's current GC percent.
func gcPercent(t *testing.T) int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("runtime/metrics has no /gc/gogc:percent")
	}
	return int(s[0].Value.Uint64())
}

// collect runs two full collections and waits until the finalizers of the first have run (the
// finalizer goroutine runs them in the order they were queued), so the tuner has seen the first.
func collect(t *testing.T) {
	t.Helper()
	for range 2 {
		done := make(chan struct{})
		runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) { close(done) })
		runtime.GC()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("no finalizer ran within a minute of a collection")
		}
	}
}

// TestGCHeadroomTunes: with a small live heap the tuner raises the GC percent to keep the
// headroom, puts it back to GOGC=100 once the live heap outgrows the headroom, raises it again
// when the heap shrinks, and when its context ends restores 100 for good, leaving no goroutine.
func TestGCHeadroomTunes(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const headroom = 32 << 20
	collect(t)
	goroutines := runtime.NumGoroutine()
	if p := gcPercent(t); p != 100 {
		t.Fatalf("GC percent before the tuner = %d, want 100", p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !startGCHeadroom(ctx, headroom, func(string) string { return "" }) {
		t.Fatal("the tuner did not start")
	}
	collect(t)
	// The test binary's live heap is a few MB: a 32 MiB headroom is several hundred percent.
	if p := gcPercent(t); p < 300 {
		t.Fatalf("GC percent with a small live heap = %d, want >= 300", p)
	}

	hold := make([]byte, 2*headroom) // the live heap outgrows the headroom
	collect(t)
	if p := gcPercent(t); p != 100 {
		t.Errorf("GC percent with %d MiB live = %d, want 100", len(hold)>>20, p)
	}
	runtime.KeepAlive(hold)
	hold = nil
	collect(t)
	if p := gcPercent(t); p < 300 {
		t.Errorf("GC percent once the heap shrank back = %d, want >= 300", p)
	}

	cancel()
	deadline := time.Now().Add(time.Minute)
	for gcPercent(t) != 100 || runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("after its context ended: GC percent %d (want 100), %d goroutines (want <= %d)", gcPercent(t), runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	collect(t) // a tuner still armed would raise the percent again here
	if p := gcPercent(t); p != 100 {
		t.Errorf("GC percent after the tuner stopped and the heap was collected = %d, want 100", p)
	}
}

// TestGCHeadroomOff: an operator's GOGC, or a headroom of 0, leaves the runtime alone.
func TestGCHeadroomOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	cases := []struct {
		name     string
		headroom uint64
		env      map[string]string
	}{
		{"GOGC set", 64 << 20, map[string]string{"GOGC": "150"}},
		{"GOGC off", 64 << 20, map[string]string{"GOGC": "off"}},
		{"headroom 0", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if startGCHeadroom(ctx, tc.headroom, func(k string) string { return tc.env[k] }) {
				t.Fatal("the tuner started")
			}
			collect(t)
			if p := gcPercent(t); p != 100 {
				t.Errorf("GC percent = %d, want 100 (untouched)", p)
			}
		})
	}
}

// TestGCHeadroomFlag: --gc-headroom and LWOTA_GC_HEADROOM take bytes with a binary unit; a bad
// unit is a clear error.
func TestGCHeadroomFlag(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    uint64
		wantErr string
	}{
		{name: "default", want: 64 << 20},
		{name: "MiB", args: []string{"--gc-headroom", "256MiB"}, want: 256 << 20},
		{name: "KiB", args: []string{"--gc-headroom=512KiB"}, want: 512 << 10},
		{name: "GiB", args: []string{"--gc-headroom", "1GiB"}, want: 1 << 30},
		{name: "bytes", args: []string{"--gc-headroom", "4096"}, want: 4096},
		{name: "B", args: []string{"--gc-headroom", "4096B"}, want: 4096},
		{name: "off", args: []string{"--gc-headroom", "0"}, want: 0},
		{name: "environment", env: map[string]string{"LWOTA_GC_HEADROOM": "8MiB"}, want: 8 << 20},
		{name: "decimal unit", args: []string{"--gc-headroom", "64MB"}, wantErr: "want bytes with an optional unit B, KiB, MiB or GiB"},
		{name: "negative", args: []string{"--gc-headroom", "-1MiB"}, wantErr: "want bytes"},
		{name: "overflow", args: []string{"--gc-headroom", "99999999999GiB"}, wantErr: "want bytes"},
		{name: "bad environment", env: map[string]string{"LWOTA_GC_HEADROOM": "lots"}, wantErr: "LWOTA_GC_HEADROOM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServeFlags(tc.args, io.Discard, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.GCHeadroom != tc.want {
				t.Errorf("GCHeadroom = %d, want %d", c.GCHeadroom, tc.want)
			}
		})
	}
}

// TestFormatByteSize: the flag's default prints as its users write it.
func TestFormatByteSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 64 << 20: "64MiB", 1 << 30: "1GiB", 1536: "1536", 1000: "1000", 3 << 10: "3KiB"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
