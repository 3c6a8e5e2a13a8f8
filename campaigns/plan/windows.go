package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Windows are a campaign's maintenance windows, parsed. No windows at all means always open.
type Windows struct {
	ws []window
}

type window struct {
	sched *cron.SpecSchedule
	d     time.Duration
}

// cronParser reads the five standard fields and the @descriptors; seconds are not offered,
// because a window that opens on a given second is not something a release engineer plans.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NewWindows parses ws. Each must have a cron expression with fixed times (no @every, no
// CRON_TZ= prefix: the zone is TimeZone), a positive Duration and a known IANA zone.
func NewWindows(ws []Window) (*Windows, error) {
	w := &Windows{}
	for i, win := range ws {
		pw, err := parseWindow(win)
		if err != nil {
			return nil, fmt.Errorf("schedule.windows[%d]: %w", i, err)
		}
		w.ws = append(w.ws, pw)
	}
	return w, nil
}

func parseWindow(w Window) (window, error) {
	loc, err := location(w.TimeZone)
	if err != nil {
		return window{}, err
	}
	spec := strings.TrimSpace(w.Cron)
	switch {
	case spec == "":
		return window{}, fmt.Errorf("cron: empty expression")
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return window{}, fmt.Errorf("cron: %q: give the zone in time_zone, not in the expression", w.Cron)
	case strings.HasPrefix(spec, "@every"):
		return window{}, fmt.Errorf("cron: %q: @every has no fixed opening times; use a cron expression", w.Cron)
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return window{}, fmt.Errorf("cron: %q: %w", w.Cron, err)
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return window{}, fmt.Errorf("cron: %q: not a calendar schedule", w.Cron)
	}
	ss.Location = loc
	if w.Duration <= 0 {
		return window{}, fmt.Errorf("duration: %v: must be positive", w.Duration)
	}
	return window{sched: ss, d: w.Duration}, nil
}

// location loads an IANA zone. "Local" is refused: it would make a plan mean different times on
// different lwota nodes.
func location(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("time_zone: \"Local\" depends on the machine; name an IANA zone such as \"Europe/Berlin\"")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time_zone: unknown time zone %q", name)
	}
	return loc, nil
}

// Open reports whether now is inside a window: some opening f with f <= now < f+Duration.
func (w *Windows) Open(now time.Time) bool {
	if len(w.ws) == 0 {
		return true
	}
	for _, win := range w.ws {
		if win.open(now) {
			return true
		}
	}
	return false
}

// open: the first opening strictly after now-d is the only one that can still be open at now.
func (win window) open(now time.Time) bool {
	f := win.sched.Next(now.Add(-win.d))
	return !f.IsZero() && !f.After(now)
}

// NextOpen is now when a window is open, else the next opening of any window, in now's
// location; the zero time when no window opens again (cron looks five years ahead).
func (w *Windows) NextOpen(now time.Time) time.Time {
	if w.Open(now) {
		return now
	}
	var next time.Time
	for _, win := range w.ws {
		f := win.sched.Next(now)
		if !f.IsZero() && (next.IsZero() || f.Before(next)) {
			next = f
		}
	}
	if next.IsZero() {
		return next
	}
	return next.In(now.Location())
}
