package plan

import (
	"fmt"
	"runtime"
	"testing"
)

// TestAssignAllocations: assigning 10,000 devices to waves allocates their sort records and
// the waves, not a set of the endpoints besides. A campaign start pays for every byte it
// allocates in mark assists when it meets a collection of a large fleet's heap.
func TestAssignAllocations(t *testing.T) {
	eps := make([]string, 10000)
	for i := range eps {
		eps[i] = fmt.Sprintf("urn:imei:%015d", i)
	}
	p := Plan{Waves: []Wave{{Percent: 10}, {Percent: 100}}}
	best := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		Assign(eps, nil, p, "campaign-1")
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	// An 80-byte record a device and the waves' 16 bytes: ~100; the set took ~40 more.
	const limit = 110
	if per := best / uint64(len(eps)); per > limit {
		t.Errorf("Assign allocated %d bytes a device (%d for %d), want at most %d", per, best, len(eps), limit)
	} else {
		t.Logf("Assign allocated %d bytes a device", per)
	}
}
