package plan

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone database: %v", err)
	}
	return loc
}

func TestWindowsOpen(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	ny := mustLoad(t, "America/New_York")
	tests := []struct {
		name string
		w    Window
		at   time.Time
		open bool
		next time.Time // NextOpen(at)
	}{
		// Berlin moves from CET (+1) to CEST (+2) on 29 March 2026: 09:00 local is 08:00 UTC before, 07:00 UTC after.
		{"berlin before DST, open", Window{"0 9 * * *", time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 28, 8, 30, 0, 0, time.UTC), true, time.Date(2026, 3, 28, 8, 30, 0, 0, time.UTC)},
		{"berlin after DST, open", Window{"0 9 * * *", time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 29, 7, 30, 0, 0, time.UTC), true, time.Date(2026, 3, 29, 7, 30, 0, 0, time.UTC)},
		{"berlin after DST, closed at the old hour", Window{"0 9 * * *", time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC), false, time.Date(2026, 3, 31, 9, 0, 0, 0, berlin)},
		{"opening instant is open", Window{"0 9 * * *", time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 28, 9, 0, 0, 0, berlin), true, time.Date(2026, 3, 28, 9, 0, 0, 0, berlin)},
		{"closing instant is closed", Window{"0 9 * * *", time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 28, 10, 0, 0, 0, berlin), false, time.Date(2026, 3, 29, 9, 0, 0, 0, berlin)},
		// A window crossing midnight and a DST change: 01:00 on 29 March + 3 h ends at 05:00 CEST (3 h of real time).
		{"across the spring change", Window{"0 1 * * *", 3 * time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 29, 4, 30, 0, 0, berlin), true, time.Date(2026, 3, 29, 4, 30, 0, 0, berlin)},
		{"across the spring change, closed", Window{"0 1 * * *", 3 * time.Hour, "Europe/Berlin"}, time.Date(2026, 3, 29, 5, 0, 0, 0, berlin), false, time.Date(2026, 3, 30, 1, 0, 0, 0, berlin)},
		// New York skips 02:00-03:00 on 8 March 2026: a 02:30 window does not open that day (robfig/cron skips it).
		{"skipped hour", Window{"30 2 * * *", time.Hour, "America/New_York"}, time.Date(2026, 3, 8, 3, 45, 0, 0, ny), false, time.Date(2026, 3, 9, 2, 30, 0, 0, ny)},
		// On 1 November 2026 01:00-02:00 happens twice in New York; the window opens at the first 01:30 (EDT).
		{"repeated hour", Window{"30 1 * * *", 20 * time.Minute, "America/New_York"}, time.Date(2026, 11, 1, 5, 40, 0, 0, time.UTC), true, time.Date(2026, 11, 1, 5, 40, 0, 0, time.UTC)},
		{"weekly", Window{"@weekly", 2 * time.Hour, ""}, time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), false, time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)},
		{"weekdays at night", Window{"0 22 * * 1-5", 4 * time.Hour, "UTC"}, time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC), true, time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)}, // Friday 22:00 + 4 h covers Saturday 01:00
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := NewWindows([]Window{tt.w})
			if err != nil {
				t.Fatal(err)
			}
			if got := ws.Open(tt.at); got != tt.open {
				t.Errorf("Open(%v) = %v, want %v", tt.at, got, tt.open)
			}
			if got := ws.NextOpen(tt.at); !got.Equal(tt.next) {
				t.Errorf("NextOpen(%v) = %v, want %v", tt.at, got, tt.next)
			}
		})
	}
}

func TestWindowsSeveralAndNone(t *testing.T) {
	none, err := NewWindows(nil)
	if err != nil || !none.Open(t0) || !none.NextOpen(t0).Equal(t0) {
		t.Fatalf("no windows must mean always open: %v", err)
	}
	ws, err := NewWindows([]Window{
		{Cron: "0 2 * * *", Duration: time.Hour, TimeZone: "Asia/Tokyo"}, // 17:00 UTC
		{Cron: "0 14 * * *", Duration: time.Hour, TimeZone: "UTC"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ws.NextOpen(t0), t0.Add(2*time.Hour); !got.Equal(want) {
		t.Errorf("NextOpen = %v, want %v", got, want)
	}
	if got, want := ws.NextOpen(t0.Add(3*time.Hour)), time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextOpen = %v, want %v", got, want)
	}
	if !ws.Open(time.Date(2026, 3, 1, 17, 59, 59, 0, time.UTC)) || ws.Open(time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC)) {
		t.Error("the Tokyo window is not [17:00, 18:00) UTC")
	}
	if _, err := NewWindows([]Window{{Cron: "* * *", Duration: time.Hour}}); err == nil {
		t.Error("a three-field cron was accepted")
	}
}
