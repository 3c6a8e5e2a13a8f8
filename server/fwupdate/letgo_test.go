package fwupdate

import (
	"context"
	"testing"
)

// TestLetGo: a device that moved to another node makes the run of its job here stop (lost) and
// end its step, so it sends the device nothing more; other endpoints' runs are left alone.
func TestLetGo(t *testing.T) {
	d := New(Config{Cluster: true}, nil, nil, nil, nil, nil, nil, nil)
	mk := func(id, ep string) (*run, context.Context) {
		j := jobIn(StateDelivering, false)
		j.ID, j.Endpoint = id, ep
		step, cancel := context.WithCancel(context.Background())
		r := &run{d: d, wakeC: make(chan struct{}, 1), job: j, stepCancel: cancel}
		d.runs[id], d.byEndpoint[ep] = r, r
		return r, step
	}
	moved, movedStep := mk("j1", "dev-moved")
	stays, staysStep := mk("j2", "dev-stays")

	d.LetGo("dev-moved")
	d.LetGo("dev-unknown") // no job here: nothing happens
	if !moved.lost.Load() || movedStep.Err() == nil || len(moved.wakeC) != 1 {
		t.Errorf("moved device's run: lost %v, step ended %v, woken %v", moved.lost.Load(), movedStep.Err() != nil, len(moved.wakeC) == 1)
	}
	if stays.lost.Load() || staysStep.Err() != nil {
		t.Error("another device's run was let go")
	}
}
