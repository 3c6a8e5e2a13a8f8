package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Times are stored as unix nanoseconds, UTC by definition, so they round-trip exactly on both
// backends; NULL stands for the zero time.

// minTime and maxTime bound what int64 nanoseconds can hold (years 1677 to 2262).
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos encodes t for a time column.
func nanos(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return sql.NullInt64{}, fmt.Errorf("time %s outside the storable range", t.Format(time.RFC3339))
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}, nil
}

// fromNanos decodes a time column; the result is in UTC.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// timeArgs encodes several times, stopping at the first that cannot be stored.
func timeArgs(ts ...time.Time) ([]sql.NullInt64, error) {
	out := make([]sql.NullInt64, len(ts))
	for i, t := range ts {
		n, err := nanos(t)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// jsonText encodes v for a JSON text column.
func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// nullJSON encodes v, or NULL when isNil.
func nullJSON(v any, isNil bool) (sql.NullString, error) {
	if isNil {
		return sql.NullString{}, nil
	}
	s, err := jsonText(v)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: s, Valid: true}, nil
}
