package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lwota/lwota/server/dm"
)

// SavePending inserts or replaces the queued request p (by ID) and returns once it is committed.
// Request and Result are stored as JSON, so NaN or infinite float values cannot be saved.
func (s *Store) SavePending(ctx context.Context, p *dm.Pending) error {
	if p == nil || p.ID == "" {
		return errors.New("sqlstore: save pending: no id")
	}
	args, err := pendingArgs(p)
	if err != nil {
		return fmt.Errorf("sqlstore: save pending %s: %w", p.ID, err)
	}
	if err := s.w.do(ctx, p.Endpoint, stmt{s.q.savePending, args}); err != nil {
		return fmt.Errorf("sqlstore: save pending %s: %w", p.ID, err)
	}
	return nil
}

// PendingFor returns the endpoint's requests in state queued, oldest first.
func (s *Store) PendingFor(ctx context.Context, endpoint string) ([]*dm.Pending, error) {
	rows, err := s.query(ctx, s.q.pendingFor, endpoint, string(dm.PendingQueued))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: pending for %s: %w", endpoint, err)
	}
	out, err := collect(rows, scanPending)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: pending for %s: %w", endpoint, err)
	}
	return out, nil
}

// QueuedCounts returns, for every endpoint with requests in state queued, how many it has
// (dm.QueueCounter), in one query (a scan of the (endpoint, state) index, at start only).
func (s *Store) QueuedCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, s.q.queuedCounts, string(dm.PendingQueued))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: count queued requests: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var (
			ep string
			n  int
		)
		if err := rows.Scan(&ep, &n); err != nil {
			return nil, fmt.Errorf("sqlstore: count queued requests: %w", err)
		}
		out[ep] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: count queued requests: %w", err)
	}
	return out, nil
}

// GetPending returns one request by id, or an error matching dm.ErrRequestNotFound.
func (s *Store) GetPending(ctx context.Context, id string) (*dm.Pending, error) {
	p, err := scanPending(s.queryRow(ctx, s.q.getPending, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = dm.ErrRequestNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get pending %s: %w", id, err)
	}
	return p, nil
}

// pendingArgs encodes p in the order of pendingColumns.
func pendingArgs(p *dm.Pending) ([]any, error) {
	req, err := jsonText(p.Request)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	res, err := nullJSON(p.Result, p.Result == nil)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	times, err := timeArgs(p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return []any{p.ID, p.Endpoint, string(p.State), req, res, p.Error, int64(p.Attempts), times[0], times[1]}, nil
}

// scanPending reads one row of pendingColumns.
func scanPending(row interface{ Scan(...any) error }) (*dm.Pending, error) {
	var (
		p                dm.Pending
		state, req       string
		res              sql.NullString
		created, updated sql.NullInt64
	)
	if err := row.Scan(&p.ID, &p.Endpoint, &state, &req, &res, &p.Error, &p.Attempts, &created, &updated); err != nil {
		return nil, err
	}
	p.State = dm.PendingState(state)
	if err := json.Unmarshal([]byte(req), &p.Request); err != nil {
		return nil, fmt.Errorf("pending %s: request: %w", p.ID, err)
	}
	if res.Valid {
		p.Result = new(dm.Result)
		if err := json.Unmarshal([]byte(res.String), p.Result); err != nil {
			return nil, fmt.Errorf("pending %s: result: %w", p.ID, err)
		}
	}
	p.CreatedAt = fromNanos(created)
	p.UpdatedAt = fromNanos(updated)
	return &p, nil
}
