package delivery

import "testing"

type progressLog map[string][]int64

func (p progressLog) Progress(jobID string, n int64) { p[jobID] = append(p[jobID], n) }

// The blocks the transfer server serves reach the Progress Grants follows, and nothing breaks
// before Follow.
func TestGrantsPassProgressOn(t *testing.T) {
	g := NewGrants(nil, nil, nil)
	g.Served("j1", 1024) // before Follow: dropped
	log := progressLog{}
	g.Follow(log)
	g.Served("j1", 2048)
	g.Served("j2", 512)
	if len(log["j1"]) != 1 || log["j1"][0] != 2048 || len(log["j2"]) != 1 || log["j2"][0] != 512 {
		t.Fatalf("progress heard: %v", log)
	}
}
