package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// watchOutput runs watch over one stream of events, with a clock that moves step per event.
func watchOutput(t *testing.T, events []string, live bool, width int, step time.Duration) string {
	t.Helper()
	hs := httptest.NewServer(&sseServer{scripts: [][]string{events}})
	defer hs.Close()
	cl, err := newClient(hs.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time {
		t := at
		at = at.Add(step)
		return t
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := watchCampaign(ctx, cl, "cmp_1", &out, watchConfig{live: live, width: width, now: now, retry: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestCampaignWatchRate: the live view and --plain print the same rate from the same samples:
// the server's until two samples span some time, then devices finished per minute over the
// last minute.
func TestCampaignWatchRate(t *testing.T) {
	// 40 of 100 finished at the start (testCampaign has 10 that are not succeeded).
	var events []string
	for _, succeeded := range []int{30, 40, 50, 80, 80} {
		events = append(events, progressEvent(t, "running", "", succeeded))
	}
	events = append(events, progressEvent(t, "completed", "", 90))
	rates := func(out string, re *regexp.Regexp) []string {
		var r []string
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			r = append(r, m[1])
		}
		return r
	}
	live := rates(watchOutput(t, events, true, 0, 20*time.Second), regexp.MustCompile(`, ([0-9.]+) devices/min`))
	plain := rates(watchOutput(t, events, false, 0, 20*time.Second), regexp.MustCompile(`; ([0-9.]+)/min`))
	// Samples every 20 s of 40, 50, 60, 90, 90, 100 finished: the server's 4.0 first, then 10 in
	// 20 s, 20 in 40 s, 50 in 60 s, 40 in 60 s (the first sample left the minute), 40 in 60 s.
	want := []string{"4.0", "30.0", "30.0", "50.0", "40.0", "40.0"}
	if !slices.Equal(live, want) || !slices.Equal(plain, want) {
		t.Fatalf("rates live %q, plain %q; want both %q", live, plain, want)
	}
}

// TestCampaignWatchNoTruncation: the live view cuts no line, whatever the terminal's width; a
// line wider than the terminal counts the rows it wraps onto, so the redraw goes back far enough.
func TestCampaignWatchNoTruncation(t *testing.T) {
	var c map[string]any
	if err := json.Unmarshal([]byte(testCampaign), &c); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a very long campaign name ", 8)
	c["name"], c["state"] = long, "completed"
	b, _ := json.Marshal(c)
	ev := "event: progress\ndata: " + string(b) + "\n\n"
	for _, width := range []int{0, 80, 120} {
		out := watchOutput(t, []string{progressEvent(t, "running", "", 30), ev}, true, width, time.Second)
		if !strings.Contains(out, long) || strings.Contains(out, "…") {
			t.Errorf("width %d: the name is cut:\n%s", width, out)
		}
	}
	for _, tt := range []struct {
		s     string
		width int
		want  int
	}{
		{"abcdefghij\nxy\n", 4, 4},
		{"abcdefghij\nxy\n", 0, 2},
		{"abcd\n", 4, 1},
		{"abcde\n", 4, 2},
		{"é€\n", 2, 1},
		{"", 10, 0},
	} {
		if got := screenRows(tt.s, tt.width); got != tt.want {
			t.Errorf("screenRows(%q, %d) = %d, want %d", tt.s, tt.width, got, tt.want)
		}
	}
}
