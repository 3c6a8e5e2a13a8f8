package fwupdate

import (
	"context"
	"time"
)

// Stats is the update side of the fleet overview.
type Stats struct {
	// Active counts the active jobs (Job.Active) by state.
	Active map[State]int
	// Failures are the jobs that failed since the time asked, grouped by the device's Update
	// Result (/5/0/5, Unknown when it never told one) and reason, most jobs first; MoreFailures
	// tells that smaller groups were left out.
	Failures     []FailureCount
	MoreFailures bool
	Failed       int // every job failed since the time asked
}

// FailureCount is how many jobs failed with one device result and reason.
type FailureCount struct {
	DeviceResult int
	Reason       string
	Jobs         int
}

// StatsStore is the optional capability of a Store to aggregate jobs in the database.
// maxFailures bounds Stats.Failures.
type StatsStore interface {
	JobStats(ctx context.Context, since time.Time, maxFailures int) (*Stats, error)
	// LatestJobs returns the newest job of each of endpoints that has one.
	LatestJobs(ctx context.Context, endpoints []string) (map[string]*Job, error)
}
