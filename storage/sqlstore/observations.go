package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
)

// SaveObservation inserts or replaces the observation of (o.Endpoint, o.Path).
func (s *Store) SaveObservation(ctx context.Context, o *observe.Observation) error {
	if o == nil || o.Endpoint == "" {
		return errors.New("sqlstore: save observation: no endpoint")
	}
	created, err := nanos(o.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: save observation %s %s: %w", o.Endpoint, o.Path, err)
	}
	token := o.Token
	if token == nil {
		token = []byte{} // the column is NOT NULL; an empty token reads back as empty
	}
	paths := make([]string, len(o.Paths))
	for i, p := range o.Paths {
		paths[i] = p.String()
	}
	args := []any{o.Endpoint, o.Path.String(), token, int64(o.Format), created, strings.Join(paths, " ")}
	if err := s.w.do(ctx, o.Endpoint, stmt{s.q.saveObservation, args}); err != nil {
		return fmt.Errorf("sqlstore: save observation %s %s: %w", o.Endpoint, o.Path, err)
	}
	return nil
}

// DeleteObservation removes the observation of (endpoint, path); deleting one that does not exist
// is not an error.
func (s *Store) DeleteObservation(ctx context.Context, endpoint string, path lwm2m.Path) error {
	if err := s.w.do(ctx, endpoint, stmt{s.q.deleteObservation, []any{endpoint, path.String()}}); err != nil {
		return fmt.Errorf("sqlstore: delete observation %s %s: %w", endpoint, path, err)
	}
	return nil
}

// Observations returns the endpoint's observations ordered by path, or every observation ordered
// by endpoint and path when endpoint is "".
func (s *Store) Observations(ctx context.Context, endpoint string) ([]*observe.Observation, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if endpoint == "" {
		rows, err = s.query(ctx, s.q.observationsAll)
	} else {
		rows, err = s.query(ctx, s.q.observationsFor, endpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: observations of %q: %w", endpoint, err)
	}
	defer rows.Close()
	var out []*observe.Observation
	for rows.Next() {
		var (
			o       observe.Observation
			path    string
			format  int64
			created sql.NullInt64
			paths   string
		)
		if err := rows.Scan(&o.Endpoint, &path, &o.Token, &format, &created, &paths); err != nil {
			return nil, fmt.Errorf("sqlstore: observations of %q: %w", endpoint, err)
		}
		for _, f := range strings.Fields(paths) {
			p, err := lwm2m.ParsePath(f)
			if err != nil {
				return nil, fmt.Errorf("sqlstore: observations of %q: paths: %w", endpoint, err)
			}
			o.Paths = append(o.Paths, p)
		}
		if o.Path, err = lwm2m.ParsePath(path); err != nil {
			return nil, fmt.Errorf("sqlstore: observations of %q: %w", endpoint, err)
		}
		o.Format = lwm2m.ContentFormat(format)
		o.CreatedAt = fromNanos(created)
		out = append(out, &o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: observations of %q: %w", endpoint, err)
	}
	return out, nil
}

// SaveLatest inserts or replaces the latest value of (l.Endpoint, l.Path). Records are stored as
// JSON, so NaN or infinite float values cannot be saved.
func (s *Store) SaveLatest(ctx context.Context, l *observe.Latest) error {
	if l == nil || l.Endpoint == "" {
		return errors.New("sqlstore: save latest: no endpoint")
	}
	records, err := jsonText(l.Records)
	if err != nil {
		return fmt.Errorf("sqlstore: save latest %s %s: records: %w", l.Endpoint, l.Path, err)
	}
	t, err := nanos(l.Time)
	if err != nil {
		return fmt.Errorf("sqlstore: save latest %s %s: %w", l.Endpoint, l.Path, err)
	}
	args := []any{l.Endpoint, l.Path.String(), records, t}
	if err := s.w.do(ctx, l.Endpoint, stmt{s.q.saveLatest, args}); err != nil {
		return fmt.Errorf("sqlstore: save latest %s %s: %w", l.Endpoint, l.Path, err)
	}
	return nil
}

// LatestFor returns the endpoint's latest values ordered by path.
func (s *Store) LatestFor(ctx context.Context, endpoint string) ([]*observe.Latest, error) {
	rows, err := s.query(ctx, s.q.latestFor, endpoint)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: latest for %s: %w", endpoint, err)
	}
	defer rows.Close()
	var out []*observe.Latest
	for rows.Next() {
		var (
			l             observe.Latest
			path, records string
			t             sql.NullInt64
		)
		if err := rows.Scan(&l.Endpoint, &path, &records, &t); err != nil {
			return nil, fmt.Errorf("sqlstore: latest for %s: %w", endpoint, err)
		}
		if l.Path, err = lwm2m.ParsePath(path); err != nil {
			return nil, fmt.Errorf("sqlstore: latest for %s: %w", endpoint, err)
		}
		if err := json.Unmarshal([]byte(records), &l.Records); err != nil {
			return nil, fmt.Errorf("sqlstore: latest for %s %s: records: %w", endpoint, path, err)
		}
		l.Time = fromNanos(t)
		out = append(out, &l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: latest for %s: %w", endpoint, err)
	}
	return out, nil
}
