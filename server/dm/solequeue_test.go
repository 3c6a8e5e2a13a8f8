package dm

import (
	"context"
	"sync"
	"testing"
)

// countingQueue is a queue store that counts its reads: QueuedCounts answers counts, PendingFor
// finds nothing (the requests were answered meanwhile).
type countingQueue struct {
	memQueue
	counts map[string]int
	mu     sync.Mutex
	reads  map[string]int
}

func (q *countingQueue) QueuedCounts(context.Context) (map[string]int, error) { return q.counts, nil }

func (q *countingQueue) PendingFor(_ context.Context, endpoint string) ([]*Pending, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reads[endpoint]++
	return nil, nil
}

func (q *countingQueue) readsOf(endpoint string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reads[endpoint]
}

// With SoleQueue the client counts every endpoint's queue at start: the wake-up of a device
// with nothing queued (every registration of a fleet) reads nothing, one with requests queued
// is read, and once its queue is empty it is not read again. Without SoleQueue (a cluster:
// another node may queue) each endpoint's first wake-up reads the store, as before.
func TestSoleQueueSkipsEmptyQueues(t *testing.T) {
	for _, tc := range []struct {
		name              string
		sole              bool
		wantFresh, wantSl int
	}{
		{"sole", true, 0, 1},
		{"shared", false, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &countingQueue{counts: map[string]int{"sleepy": 1}, reads: map[string]int{}}
			cfg := DefaultConfig()
			cfg.SoleQueue = tc.sole
			c := New(&goneSender{}, oneDevice{}, nil, q, nil, nil, nil, cfg, nil, nil, nil)
			if err := c.LoadQueued(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second round finds both counted
				c.Woke(context.Background(), "fresh")
				c.Woke(context.Background(), "sleepy")
				c.Wait()
			}
			if got := q.readsOf("fresh"); got != tc.wantFresh {
				t.Errorf("queue of an endpoint with nothing queued read %d times, want %d", got, tc.wantFresh)
			}
			if got := q.readsOf("sleepy"); got != tc.wantSl {
				t.Errorf("queue of an endpoint with a request queued read %d times, want %d", got, tc.wantSl)
			}
		})
	}
}
