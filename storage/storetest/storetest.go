// Package storetest is the contract suite of the store interfaces the domain packages declare
// (registration.Store, dm.QueueStore, observe.Store, firmware.Store); every implementation runs it.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
)

// Stores are the implementations under test, usually one value in every field.
type Stores struct {
	Registrations registration.Store
	Queue         dm.QueueStore
	Observations  observe.Store
	Images        firmware.Store
}

// Run runs the suite of every interface in Stores; open must return a fresh, empty store and
// register its cleanup with t. The tests run in parallel, each on a store of its own, so open
// must be safe to call from several goroutines. Times are compared to the microsecond, the
// precision the interfaces promise; implementations may keep more.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("registration", func(t *testing.T) {
		RunRegistrations(t, func(t *testing.T) registration.Store { return need(t, open(t).Registrations) })
	})
	t.Run("queue", func(t *testing.T) {
		RunQueue(t, func(t *testing.T) dm.QueueStore { return need(t, open(t).Queue) })
	})
	t.Run("observe", func(t *testing.T) {
		RunObserve(t, func(t *testing.T) observe.Store { return need(t, open(t).Observations) })
	})
	t.Run("images", func(t *testing.T) {
		RunImages(t, func(t *testing.T) firmware.Store { return need(t, open(t).Images) })
	})
}

// parallel runs one test of a suite in parallel with the others, on a store of its own.
func parallel[S any](t *testing.T, name string, open func(t *testing.T) S, test func(t *testing.T, s S)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		test(t, open(t))
	})
}

func need[S any](t *testing.T, s S) S {
	t.Helper()
	if any(s) == nil {
		t.Fatalf("open returned no store for this interface")
	}
	return s
}

// base is the suite's clock: a time with microseconds, in a zone that is not UTC, so that a
// store that shifts or truncates instants is caught.
var base = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.FixedZone("CET", 3600))

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

// utc normalizes t for comparison: UTC, without monotonic reading, truncated to the microsecond;
// the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC().Truncate(time.Microsecond)
}

// cancelled returns a context that is already cancelled.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// wantCanceled checks that err reports the cancelled context.
func wantCanceled(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", what, err)
	}
}
