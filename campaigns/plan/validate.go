package plan

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits of a plan, so that a typo cannot create a plan nobody can reason about.
const (
	MaxWaves   = 64
	MaxWindows = 32
	MaxRetries = 100
	// windowHorizon is how far ahead a window must open at least once.
	windowHorizon = 365 * 24 * time.Hour
)

// Problem is one reason a plan is refused: the field, named as in the API's JSON
// ("waves[2].percent"), and what is wrong with it.
type Problem struct {
	Field string
	Msg   string
}

// ValidationError lists every problem of a refused plan, so that one round trip fixes them all.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Msg
	}
	return "plan: " + strings.Join(parts, "; ")
}

// Validate refuses a plan that cannot run as written, at now (windows must open and the end must
// lie ahead). It returns nil or a *ValidationError with every problem; README.md lists the rules.
func Validate(p Plan, now time.Time) error {
	v := &validator{}
	v.waves(p)
	v.threshold("wave_threshold", p.WaveThreshold)
	v.threshold("overall_threshold", p.OverallThreshold)
	v.pacing(p.Pacing)
	v.retries(p.Retries)
	v.schedule(p.Schedule, now)
	if p.SpreadBy != strings.TrimSpace(p.SpreadBy) {
		v.add("spread_by", "%q has surrounding spaces", p.SpreadBy)
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	problems []Problem
}

func (v *validator) add(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// percent checks a number that must lie in [0, 100]; NaN and infinities fail too.
func (v *validator) percent(field string, x float64) bool {
	if math.IsNaN(x) || x < 0 || x > 100 {
		v.add(field, "%v is outside 0..100", x)
		return false
	}
	return true
}

func (v *validator) nonNegative(field string, x int) {
	if x < 0 {
		v.add(field, "%d is negative", x)
	}
}

func (v *validator) waves(p Plan) {
	ws := p.Waves
	switch {
	case len(ws) == 0:
		v.add("waves", "no waves: give at least one, the last being percent 100")
		return
	case len(ws) > MaxWaves:
		v.add("waves", "%d waves, more than %d", len(ws), MaxWaves)
		return
	}
	lastPct, lastPctAt, lastCount, lastCountAt := 0.0, -1, 0, -1
	for i, w := range ws {
		f := fmt.Sprintf("waves[%d]", i)
		switch {
		case w.Percent != 0 && w.Count != 0:
			v.add(f, "both percent (%v) and count (%d) are set; give one", w.Percent, w.Count)
		case w.Count < 0:
			v.add(f+".count", "%d is negative", w.Count)
		case w.Count > 0:
			if lastCountAt >= 0 && w.Count <= lastCount {
				v.add(f+".count", "%d is not above the %d of waves[%d]; waves are cumulative and must grow", w.Count, lastCount, lastCountAt)
			}
			lastCount, lastCountAt = w.Count, i
		case math.IsNaN(w.Percent) || w.Percent < 0 || w.Percent > 100:
			v.add(f+".percent", "%v is outside 0..100", w.Percent)
		case w.Percent == 0:
			v.add(f, "neither percent nor count is set")
		default:
			if lastPctAt >= 0 && w.Percent <= lastPct {
				v.add(f+".percent", "%v is not above the %v of waves[%d]; waves are cumulative and must grow", w.Percent, lastPct, lastPctAt)
			}
			lastPct, lastPctAt = w.Percent, i
		}
		v.percent(f+".gate.success_percent", w.Gate.SuccessPercent)
		if w.Soak < 0 {
			v.add(f+".soak", "%v is negative", w.Soak)
		}
		if w.Threshold != nil {
			v.threshold(f+".threshold", *w.Threshold)
		}
		if i == len(ws)-1 {
			if w.Percent != 100 {
				v.add(f, "the last wave must be percent 100, so that every device is covered")
			}
			if w.Gate != (Gate{}) || w.Soak != 0 {
				v.add(f+".gate", "the last wave has no next wave to gate; put the gate and soak on waves[%d]", i-1)
			}
		}
	}
}

func (v *validator) threshold(f string, t FailureThreshold) {
	v.percent(f+".percent", t.Percent)
	v.nonNegative(f+".min_devices", t.MinDevices)
	v.nonNegative(f+".count", t.Count)
	if t.MinDevices > 0 && t.Percent == 0 {
		v.add(f+".min_devices", "set without percent; it is the sample the percentage needs")
	}
	enabled := t.Percent > 0 || t.Count > 0
	switch {
	case t.Action == ActionPause || t.Action == ActionAbort:
	case t.Action == "" && !enabled:
	case t.Action == "":
		v.add(f+".action", "missing: pause or abort")
	default:
		v.add(f+".action", "%q is not pause or abort", t.Action)
	}
}

func (v *validator) pacing(p Pacing) {
	v.nonNegative("pacing.max_concurrent", p.MaxConcurrent)
	v.nonNegative("pacing.max_starts_per_minute", p.MaxStartsPerMinute)
	if r := p.Ramp; r != (Ramp{}) {
		if !(r.Base > 0) || math.IsInf(r.Base, 0) {
			v.add("pacing.ramp.base", "%v: must be a positive number of starts per minute", r.Base)
		}
		if !(r.Factor >= 1) || math.IsInf(r.Factor, 0) {
			v.add("pacing.ramp.factor", "%v: must be at least 1", r.Factor)
		}
		if r.Every < 1 {
			v.add("pacing.ramp.every", "%d: must be at least 1 success", r.Every)
		}
	}
	if c := p.PerLabelCap; c != (LabelCap{}) {
		if strings.TrimSpace(c.Key) == "" {
			v.add("pacing.per_label_cap.key", "missing: the label whose values are capped")
		}
		if c.Max < 1 {
			v.add("pacing.per_label_cap.max", "%d: must be at least 1", c.Max)
		}
	}
}

func (v *validator) retries(r Retries) {
	if r.InProgressTimeout < 0 {
		v.add("retries.in_progress_timeout", "%v is negative", r.InProgressTimeout)
	}
	for _, c := range []struct {
		field string
		n     int
	}{{"retries.retryable", r.Retryable}, {"retries.terminal", r.Terminal}} {
		if c.n < 0 || c.n > MaxRetries {
			v.add(c.field, "%d is outside 0..%d", c.n, MaxRetries)
		}
	}
}

func (v *validator) schedule(s Schedule, now time.Time) {
	if !s.EndAt.IsZero() {
		if !s.StartAt.IsZero() && !s.EndAt.After(s.StartAt) {
			v.add("schedule.end_at", "%s is not after start_at %s", s.EndAt.Format(time.RFC3339), s.StartAt.Format(time.RFC3339))
		} else if !s.EndAt.After(now) {
			v.add("schedule.end_at", "%s has already passed", s.EndAt.Format(time.RFC3339))
		}
		if s.EndAction == "" {
			v.add("schedule.end_action", "missing: stop-starting or cancel-in-flight")
		}
	}
	if s.EndAction != "" && s.EndAction != EndStopStarting && s.EndAction != EndCancelInFlight {
		v.add("schedule.end_action", "%q is not stop-starting or cancel-in-flight", s.EndAction)
	}
	if len(s.Windows) > MaxWindows {
		v.add("schedule.windows", "%d windows, more than %d", len(s.Windows), MaxWindows)
		return
	}
	ok := true
	for i, w := range s.Windows {
		f := fmt.Sprintf("schedule.windows[%d]", i)
		pw, err := parseWindow(w)
		if err != nil {
			v.add(f, "%v", err)
			ok = false
			continue
		}
		if next := pw.sched.Next(now); next.IsZero() || next.Sub(now) > windowHorizon {
			v.add(f+".cron", "%q never fires within a year", w.Cron)
			ok = false
		}
	}
	if !ok || len(s.Windows) == 0 || s.EndAt.IsZero() {
		return
	}
	from := now
	if s.StartAt.After(now) {
		from = s.StartAt
	}
	ws, _ := NewWindows(s.Windows)
	if next := ws.NextOpen(from); next.IsZero() || !next.Before(s.EndAt) {
		v.add("schedule.windows", "no window opens between %s and end_at %s", from.Format(time.RFC3339), s.EndAt.Format(time.RFC3339))
	}
}
