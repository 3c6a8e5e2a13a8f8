package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lwota/lwota/server/fwupdate"
)

var _ fwupdate.Store = (*Store)(nil)

var jobColumns = []string{
	"id", "endpoint", "active_endpoint", "image_id", "image_version", "image_size", "method", "policy",
	"state", "reason", "attempt", "seq", "created_at", "updated_at", "step_at", "bytes_delivered",
	"device_state", "device_result", "protocols_tried", "next_attempt_at", "campaign_id",
	"from_version", "delivery",
}

var historyColumns = []string{
	"job_id", "seq", "from_state", "to_state", "at", "reason", "device_state", "device_result", "attempt",
}

// jobQueries are the statements of the fwupdate.Store methods.
type jobQueries struct {
	insertJob, updateJob, insertHistory  string
	getJob, jobsFor, activeJobs, history string
	imageInUse                           string
	// lockImage (PostgreSQL; "" on SQLite, whose one writer serializes every write) holds the
	// image row a new job names until the job commits, so a concurrent DeleteImage waits and then
	// sees the job; jobImageExists, the job write's last statement, finds no row when the image
	// is gone, which rolls the job back.
	lockImage, jobImageExists string
}

// jobQueriesBy holds the statements with "?" placeholders [0] and numbered ones [1].
var jobQueriesBy = [2]jobQueries{buildJobQueries(&dialect{}), buildJobQueries(&dialect{numbered: true})}

func buildJobQueries(d *dialect) jobQueries {
	sel := "SELECT " + strings.Join(jobColumns, ", ") + " FROM update_jobs"
	set := make([]string, 0, len(jobColumns)-1)
	for _, c := range jobColumns[1:] {
		set = append(set, c+" = ?")
	}
	return jobQueries{
		insertJob: d.rebind(insert("update_jobs", jobColumns)),
		// The job moves only from the state its transition starts at: seq is the version.
		updateJob:      d.rebind("UPDATE update_jobs SET " + strings.Join(set, ", ") + " WHERE id = ? AND seq = ?"),
		insertHistory:  d.rebind(insert("update_job_history", historyColumns)),
		getJob:         d.rebind(sel + " WHERE id = ?"),
		imageInUse:     d.rebind("SELECT 1 FROM update_jobs WHERE image_id = ? AND active_endpoint IS NOT NULL LIMIT 1"),
		jobImageExists: d.rebind("UPDATE update_jobs SET image_id = image_id WHERE id = ? AND EXISTS (SELECT 1 FROM images WHERE id = ?)"),
		jobsFor:        d.rebind(sel + " WHERE endpoint = ? ORDER BY created_at DESC, id DESC LIMIT ?"),
		activeJobs:     d.rebind(sel + " WHERE active_endpoint IS NOT NULL ORDER BY created_at, id"),
		history: d.rebind("SELECT " + strings.Join(historyColumns, ", ") +
			" FROM update_job_history WHERE job_id = ? ORDER BY seq"),
		lockImage: lockClause(d, "SELECT id FROM images WHERE id = ? FOR SHARE"),
	}
}

// lockClause is query on PostgreSQL and "" on SQLite, which has no row locks (and needs none).
func lockClause(d *dialect, query string) string {
	if !d.numbered {
		return ""
	}
	return d.rebind(query)
}

// errImageGone: the write of a job found its image deleted.
var errImageGone = errors.New("image gone")

func (s *Store) jq() *jobQueries { return s.q.jobs }

// jobQueriesFor is jobQueriesBy's statements in d's placeholders.
func jobQueriesFor(d *dialect) *jobQueries {
	if d.numbered {
		return &jobQueriesBy[1]
	}
	return &jobQueriesBy[0]
}

// CreateJob inserts j and its creation record in one transaction. The unique index on
// active_endpoint refuses a second active job of one endpoint: that fails with fwupdate.ErrActiveJob.
func (s *Store) CreateJob(ctx context.Context, j *fwupdate.Job, created fwupdate.Transition) error {
	if err := checkJob(j, created); err != nil {
		return fmt.Errorf("sqlstore: create job: %w", err)
	}
	args, err := jobArgs(j)
	if err != nil {
		return fmt.Errorf("sqlstore: create job %s: %w", j.ID, err)
	}
	hist, err := historyArgs(created)
	if err != nil {
		return fmt.Errorf("sqlstore: create job %s: %w", j.ID, err)
	}
	out, err := s.jobOutbox(j, created)
	if err != nil {
		return fmt.Errorf("sqlstore: create job %s: %w", j.ID, err)
	}
	q := s.jq()
	var stmts []stmt
	if q.lockImage != "" {
		stmts = append(stmts, stmt{q.lockImage, []any{j.ImageID}})
	}
	// The webhook outbox row commits with the transition it announces.
	stmts = append(stmts, stmt{q.insertJob, args}, stmt{q.insertHistory, hist}, out,
		stmt{q.jobImageExists, []any{j.ID, j.ImageID}})
	err = s.w.doMatch(ctx, j.Endpoint, errImageGone, stmts...)
	if errors.Is(err, errImageGone) {
		// Deleted before the job could hold it: no job for an image that no longer exists.
		return fmt.Errorf("sqlstore: create job %s for %s: image %s: %w", j.ID, j.Endpoint, j.ImageID, fwupdate.ErrImageNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: create job %s for %s: %w", j.ID, j.Endpoint, jobError(err))
	}
	return nil
}

// SaveTransition updates the job row, if it is still at tr.Seq-1, and appends tr to the history,
// in one transaction.
func (s *Store) SaveTransition(ctx context.Context, j *fwupdate.Job, tr fwupdate.Transition) error {
	if err := checkJob(j, tr); err != nil {
		return fmt.Errorf("sqlstore: save transition: %w", err)
	}
	args, err := jobArgs(j)
	if err != nil {
		return fmt.Errorf("sqlstore: save transition %s #%d: %w", j.ID, tr.Seq, err)
	}
	hist, err := historyArgs(tr)
	if err != nil {
		return fmt.Errorf("sqlstore: save transition %s #%d: %w", j.ID, tr.Seq, err)
	}
	out, err := s.jobOutbox(j, tr)
	if err != nil {
		return fmt.Errorf("sqlstore: save transition %s #%d: %w", j.ID, tr.Seq, err)
	}
	q := s.jq()
	upd := append(args[1:], j.ID, int64(tr.Seq-1))
	// The webhook outbox row commits with the transition it announces; the compare-and-set
	// stays last, so a stale transition queues nothing.
	err = s.w.doMatch(ctx, j.Endpoint, fwupdate.ErrStaleJob, stmt{q.insertHistory, hist}, out, stmt{q.updateJob, upd})
	if errors.Is(err, fwupdate.ErrStaleJob) {
		if _, gerr := s.GetJob(ctx, j.ID); errors.Is(gerr, fwupdate.ErrJobNotFound) {
			err = fwupdate.ErrJobNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("sqlstore: save transition %s #%d %s -> %s: %w", j.ID, tr.Seq, tr.From, tr.To, jobError(err))
	}
	return nil
}

// SaveProgress updates the job row in place, if it is still at j.Seq: progress within a state
// needs no history line.
func (s *Store) SaveProgress(ctx context.Context, j *fwupdate.Job) error {
	if j == nil || j.ID == "" || j.Endpoint == "" {
		return errors.New("sqlstore: save progress: no job id or endpoint")
	}
	args, err := jobArgs(j)
	if err != nil {
		return fmt.Errorf("sqlstore: save progress %s: %w", j.ID, err)
	}
	upd := append(args[1:], j.ID, int64(j.Seq))
	err = s.w.doMatch(ctx, j.Endpoint, fwupdate.ErrStaleJob, stmt{s.jq().updateJob, upd})
	if err != nil {
		return fmt.Errorf("sqlstore: save progress %s #%d: %w", j.ID, j.Seq, err)
	}
	return nil
}

// ImageInUse reports whether an active update job delivers image id (firmware.UsageChecker):
// such an image must not be deleted.
func (s *Store) ImageInUse(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.queryRow(ctx, s.jq().imageInUse, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlstore: image %s in use: %w", id, err)
	}
	return true, nil
}

// GetJob returns one job, or an error matching fwupdate.ErrJobNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (*fwupdate.Job, error) {
	j, err := scanJob(s.queryRow(ctx, s.jq().getJob, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = fwupdate.ErrJobNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get job %s: %w", id, err)
	}
	return j, nil
}

// JobsFor returns the endpoint's jobs, newest first, at most limit (0 or less: all).
func (s *Store) JobsFor(ctx context.Context, endpoint string, limit int) ([]*fwupdate.Job, error) {
	if limit <= 0 {
		limit = math.MaxInt32
	}
	out, err := s.jobs(ctx, s.jq().jobsFor, endpoint, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: jobs for %s: %w", endpoint, err)
	}
	return out, nil
}

// ActiveJobs returns the jobs that still hold their endpoint, oldest first.
func (s *Store) ActiveJobs(ctx context.Context) ([]*fwupdate.Job, error) {
	out, err := s.jobs(ctx, s.jq().activeJobs)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: active jobs: %w", err)
	}
	return out, nil
}

// History returns a job's transitions by Seq; none for an unknown job.
func (s *Store) History(ctx context.Context, jobID string) ([]fwupdate.Transition, error) {
	rows, err := s.query(ctx, s.jq().history, jobID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: history of %s: %w", jobID, err)
	}
	defer rows.Close()
	var out []fwupdate.Transition
	for rows.Next() {
		var (
			tr       fwupdate.Transition
			from, to string
			at       sql.NullInt64
		)
		if err := rows.Scan(&tr.JobID, &tr.Seq, &from, &to, &at, &tr.Reason, &tr.DeviceState,
			&tr.DeviceResult, &tr.Attempt); err != nil {
			return nil, fmt.Errorf("sqlstore: history of %s: %w", jobID, err)
		}
		tr.From, tr.To, tr.At = fwupdate.State(from), fwupdate.State(to), fromNanos(at)
		out = append(out, tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: history of %s: %w", jobID, err)
	}
	return out, nil
}

func (s *Store) jobs(ctx context.Context, q string, args ...any) ([]*fwupdate.Job, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanJob)
}

// checkJob refuses a save that could not be read back consistently.
func checkJob(j *fwupdate.Job, tr fwupdate.Transition) error {
	switch {
	case j == nil || j.ID == "":
		return errors.New("no job id")
	case j.Endpoint == "":
		return fmt.Errorf("job %s: no endpoint", j.ID)
	case tr.JobID != j.ID || tr.Seq != j.Seq || tr.To != j.State:
		return fmt.Errorf("job %s at #%d %s: transition %s #%d to %s is not its latest", j.ID, j.Seq, j.State,
			tr.JobID, tr.Seq, tr.To)
	}
	return nil
}

// jobError maps the unique indexes to the errors callers decide on.
func jobError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "active_endpoint"):
		return fmt.Errorf("%w (%v)", fwupdate.ErrActiveJob, err)
	case strings.Contains(msg, "update_job_history"):
		return fmt.Errorf("%w: transition stored already (%v)", fwupdate.ErrStaleJob, err)
	}
	return err
}

// jobArgs encodes j in the order of jobColumns.
func jobArgs(j *fwupdate.Job) ([]any, error) {
	policy, err := jsonText(j.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	steps := make(map[fwupdate.State]int64, len(j.StepAt))
	for st, t := range j.StepAt {
		n, err := nanos(t)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", st, err)
		}
		if n.Valid {
			steps[st] = n.Int64
		}
	}
	stepAt, err := jsonText(steps)
	if err != nil {
		return nil, err
	}
	protocols := j.ProtocolsTried
	if protocols == nil {
		protocols = []int{}
	}
	tried, err := jsonText(protocols)
	if err != nil {
		return nil, err
	}
	times, err := timeArgs(j.CreatedAt, j.UpdatedAt, j.NextAttemptAt)
	if err != nil {
		return nil, err
	}
	var active sql.NullString
	if j.Active() {
		active = sql.NullString{String: j.Endpoint, Valid: true}
	}
	return []any{
		j.ID, j.Endpoint, active, j.ImageID, j.ImageVersion, j.ImageSize, j.Method, policy,
		string(j.State), j.Reason, int64(j.Attempt), int64(j.Seq), times[0], times[1], stepAt, j.BytesDelivered,
		int64(j.DeviceState), int64(j.DeviceResult), tried, times[2], j.CampaignID,
		j.FromVersion, j.Delivery,
	}, nil
}

// scanJob reads one row of jobColumns.
func scanJob(row interface{ Scan(...any) error }) (*fwupdate.Job, error) {
	var (
		j                      fwupdate.Job
		active                 sql.NullString
		policy, state, stepAt  string
		tried                  string
		created, updated, next sql.NullInt64
	)
	err := row.Scan(&j.ID, &j.Endpoint, &active, &j.ImageID, &j.ImageVersion, &j.ImageSize, &j.Method, &policy,
		&state, &j.Reason, &j.Attempt, &j.Seq, &created, &updated, &stepAt, &j.BytesDelivered,
		&j.DeviceState, &j.DeviceResult, &tried, &next, &j.CampaignID, &j.FromVersion, &j.Delivery)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(policy), &j.Policy); err != nil {
		return nil, fmt.Errorf("job %s: policy: %w", j.ID, err)
	}
	var steps map[fwupdate.State]int64
	if err := json.Unmarshal([]byte(stepAt), &steps); err != nil {
		return nil, fmt.Errorf("job %s: step_at: %w", j.ID, err)
	}
	j.StepAt = make(map[fwupdate.State]time.Time, len(steps))
	for st, n := range steps {
		j.StepAt[st] = time.Unix(0, n).UTC()
	}
	if err := json.Unmarshal([]byte(tried), &j.ProtocolsTried); err != nil {
		return nil, fmt.Errorf("job %s: protocols_tried: %w", j.ID, err)
	}
	if len(j.ProtocolsTried) == 0 {
		j.ProtocolsTried = nil
	}
	j.State = fwupdate.State(state)
	j.CreatedAt, j.UpdatedAt, j.NextAttemptAt = fromNanos(created), fromNanos(updated), fromNanos(next)
	return &j, nil
}

// historyArgs encodes tr in the order of historyColumns.
func historyArgs(tr fwupdate.Transition) ([]any, error) {
	at, err := nanos(tr.At)
	if err != nil {
		return nil, err
	}
	return []any{tr.JobID, int64(tr.Seq), string(tr.From), string(tr.To), at, tr.Reason,
		int64(tr.DeviceState), int64(tr.DeviceResult), int64(tr.Attempt)}, nil
}
