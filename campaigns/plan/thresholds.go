package plan

import (
	"fmt"
	"strings"
)

// Verdict is what CheckThresholds decides, and why in words an operator can act on.
type Verdict struct {
	Action Action
	Reason string // empty when Action is ActionContinue
}

// CheckThresholds decides from the counts of each wave (index i is waves[i]) whether the
// campaign continues, pauses or aborts. Each wave is checked against its own threshold (else
// Plan.WaveThreshold) and the sum against Plan.OverallThreshold. When several trip, abort wins
// over pause and every reason is given, wave by wave and then overall.
func CheckThresholds(p Plan, waves []Counts) Verdict {
	var all Counts
	v := Verdict{Action: ActionContinue}
	var reasons []string
	for i, c := range waves {
		all = all.add(c)
		t := p.WaveThreshold
		if i < len(p.Waves) && p.Waves[i].Threshold != nil {
			t = *p.Waves[i].Threshold
		}
		if why, ok := t.trips(c); ok {
			reasons = append(reasons, fmt.Sprintf("wave %d: %s", i+1, why))
			v.Action = worse(v.Action, t.Action)
		}
	}
	if why, ok := p.OverallThreshold.trips(all); ok {
		reasons = append(reasons, "overall: "+why)
		v.Action = worse(v.Action, p.OverallThreshold.Action)
	}
	v.Reason = strings.Join(reasons, "; ")
	return v
}

// trips applies both rules. The percentage is of finished updates (succeeded + failed): devices
// still pending or in progress have not failed yet, and devices already up to date were never
// updated. Waiting for MinDevices keeps one early failure from stopping a large wave.
func (t FailureThreshold) trips(c Counts) (string, bool) {
	finished := c.Succeeded + c.Failed
	if t.Percent > 0 && finished > 0 && finished >= t.MinDevices && float64(c.Failed)*100 > t.Percent*float64(finished) {
		return fmt.Sprintf("%d of %d finished devices failed (%.1f%%), over the %v%% threshold with at least %d devices: %s",
			c.Failed, finished, float64(c.Failed)*100/float64(finished), t.Percent, t.MinDevices, t.Action), true
	}
	if t.Count > 0 && c.Failed >= t.Count {
		return fmt.Sprintf("%d devices failed, reaching the threshold of %d: %s", c.Failed, t.Count, t.Action), true
	}
	return "", false
}

func worse(a, b Action) Action {
	if a == ActionAbort || b == ActionAbort {
		return ActionAbort
	}
	return ActionPause
}
