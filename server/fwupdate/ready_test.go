package fwupdate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
)

// slowResume is a Store whose ActiveJobs waits for release, as a loaded database does.
type slowResume struct {
	Store
	release chan struct{}
}

func (s *slowResume) ActiveJobs(ctx context.Context) ([]*Job, error) {
	select {
	case <-s.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// eventsUntilDone streams no events and ends the stream with ctx, as a real subscription does.
type eventsUntilDone struct{ failingDevices }

func (eventsUntilDone) SubscribeN(ctx context.Context, _ int) <-chan events.Event {
	ch := make(chan events.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

// TestReadyAfterResume: Ready stays open while Run loads the stored jobs (an Update then would
// answer ErrNotRunning: a service that said it was ready before this refused the first update
// asked of it, seen on a loaded CI machine), and closes once Run takes requests.
func TestReadyAfterResume(t *testing.T) {
	store := &slowResume{release: make(chan struct{})}
	d := New(Config{}, eventsUntilDone{}, store, nil, nil, nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	select {
	case <-d.Ready():
		t.Fatal("Ready closed while the stored jobs are still loading")
	case <-time.After(100 * time.Millisecond):
	}
	close(store.release)
	select {
	case <-d.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("Ready not closed after the jobs were resumed")
	}
	d.mu.RLock()
	running := d.ctx != nil
	d.mu.RUnlock()
	if !running {
		t.Error("Ready closed, but Update would still answer ErrNotRunning")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}
