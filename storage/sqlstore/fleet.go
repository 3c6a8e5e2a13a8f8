package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

// The fleet overview: aggregates computed by the database, so that their cost is one scan of
// an index or table per call, never the fleet in memory.
var (
	_ registration.FleetCounter = (*Store)(nil)
	_ registration.Counter      = (*Store)(nil)
	_ fwupdate.StatsStore       = (*Store)(nil)
)

// FleetCounts counts the registrations, the online ones, and the devices per firmware version
// and model (the maxVersions largest groups).
func (s *Store) FleetCounts(ctx context.Context, now time.Time, maxVersions int) (*registration.Fleet, error) {
	n, err := nanos(now)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: fleet counts: %w", err)
	}
	online := "SUM(CASE WHEN deregistered_at IS NULL AND expires_at > ? THEN 1 ELSE 0 END)"
	var f registration.Fleet
	var on *int64 // SUM over no rows is NULL
	if err := s.db.QueryRowContext(ctx, s.dialect.rebind("SELECT COUNT(*), "+online+" FROM registrations"), n.Int64).
		Scan(&f.Known, &on); err != nil {
		return nil, fmt.Errorf("sqlstore: fleet counts: %w", err)
	}
	if on != nil {
		f.Online = int(*on)
	}
	rows, err := s.db.QueryContext(ctx, s.dialect.rebind("SELECT firmware_version, model, COUNT(*), "+online+
		" FROM registrations GROUP BY firmware_version, model ORDER BY COUNT(*) DESC, firmware_version, model LIMIT ?"),
		n.Int64, maxVersions+1)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: fleet versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v registration.FleetVersion
		if err := rows.Scan(&v.FirmwareVersion, &v.Model, &v.Devices, &v.Online); err != nil {
			return nil, fmt.Errorf("sqlstore: fleet versions: %w", err)
		}
		f.Versions = append(f.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: fleet versions: %w", err)
	}
	if len(f.Versions) > maxVersions {
		f.Versions, f.MoreVersions = f.Versions[:maxVersions], true
	}
	return &f, nil
}

// JobStats counts the active jobs by state and the jobs failed since since by device result and
// reason (the maxFailures largest groups).
func (s *Store) JobStats(ctx context.Context, since time.Time, maxFailures int) (*fwupdate.Stats, error) {
	st := fwupdate.Stats{Active: map[fwupdate.State]int{}}
	rows, err := s.db.QueryContext(ctx, "SELECT state, COUNT(*) FROM update_jobs WHERE active_endpoint IS NOT NULL GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: job stats: %w", err)
	}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: job stats: %w", err)
		}
		st.Active[fwupdate.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("sqlstore: job stats: %w", err)
	}
	rows.Close()

	n, err := nanos(since)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: job stats: %w", err)
	}
	failed := s.dialect.rebind("SELECT COUNT(*) FROM update_jobs WHERE state = ? AND updated_at >= ?")
	if err := s.db.QueryRowContext(ctx, failed, string(fwupdate.StateFailed), n.Int64).Scan(&st.Failed); err != nil {
		return nil, fmt.Errorf("sqlstore: job failures: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, s.dialect.rebind("SELECT device_result, reason, COUNT(*) FROM update_jobs"+
		" WHERE state = ? AND updated_at >= ? GROUP BY device_result, reason ORDER BY COUNT(*) DESC, device_result, reason LIMIT ?"),
		string(fwupdate.StateFailed), n.Int64, maxFailures+1)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: job failures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var fc fwupdate.FailureCount
		if err := rows.Scan(&fc.DeviceResult, &fc.Reason, &fc.Jobs); err != nil {
			return nil, fmt.Errorf("sqlstore: job failures: %w", err)
		}
		st.Failures = append(st.Failures, fc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: job failures: %w", err)
	}
	if len(st.Failures) > maxFailures {
		st.Failures, st.MoreFailures = st.Failures[:maxFailures], true
	}
	return &st, nil
}

// LatestJobs returns the newest job (by creation, then id) of each endpoint that has one, in one
// query over the (endpoint, created_at) index.
func (s *Store) LatestJobs(ctx context.Context, endpoints []string) (map[string]*fwupdate.Job, error) {
	out := make(map[string]*fwupdate.Job, len(endpoints))
	if len(endpoints) == 0 {
		return out, nil
	}
	args := make([]any, len(endpoints))
	for i, ep := range endpoints {
		args[i] = ep
	}
	q := "SELECT j." + strings.Join(jobColumns, ", j.") + " FROM update_jobs j WHERE j.endpoint IN (?" +
		strings.Repeat(", ?", len(endpoints)-1) + ") AND NOT EXISTS (SELECT 1 FROM update_jobs k WHERE k.endpoint = j.endpoint" +
		" AND (k.created_at > j.created_at OR (k.created_at = j.created_at AND k.id > j.id)))"
	// Not s.jobs: its statement cache would keep one statement per page size.
	rows, err := s.db.QueryContext(ctx, s.dialect.rebind(q), args...)
	var jobs []*fwupdate.Job
	if err == nil {
		jobs, err = collect(rows, scanJob)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: latest jobs: %w", err)
	}
	for _, j := range jobs {
		out[j.Endpoint] = j
	}
	return out, nil
}
