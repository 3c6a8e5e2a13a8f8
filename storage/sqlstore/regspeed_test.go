package sqlstore_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// QueuedCounts counts only requests in state queued, per endpoint.
func TestQueuedCounts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, b.dsn(t))
			now := time.Now()
			for i, p := range []struct {
				ep    string
				state dm.PendingState
			}{{"a", dm.PendingQueued}, {"a", dm.PendingQueued}, {"b", dm.PendingQueued}, {"b", dm.PendingDone}, {"c", dm.PendingFailed}} {
				err := s.SavePending(ctx, &dm.Pending{ID: string(rune('p' + i)), Endpoint: p.ep, State: p.state,
					Request: dm.Request{Op: dm.OpRead, Path: lwm2m.NewPath(3, 0, 0)}, CreatedAt: now, UpdatedAt: now})
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.QueuedCounts(ctx)
			if want := map[string]int{"a": 2, "b": 1}; err != nil || !maps.Equal(got, want) {
				t.Fatalf("QueuedCounts = %v, %v; want %v", got, err, want)
			}
		})
	}
}
