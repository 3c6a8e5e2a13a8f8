package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lwota/lwota/server/audit"
)

// The audit log's store.
var _ audit.Store = (*Store)(nil)

var auditColumns = []string{"at", "actor", "actor_name", "role", "action", "target", "remote_addr", "status", "outcome", "detail"}

// AppendAudit stores e. The database assigns its Seq (e.Seq is not filled in); entries are never
// changed or deleted by lwota.
func (s *Store) AppendAudit(ctx context.Context, e *audit.Entry) error {
	if e == nil || e.Action == "" {
		return fmt.Errorf("sqlstore: append audit: %w", audit.ErrInvalid)
	}
	at, err := nanos(e.At)
	if err != nil || !at.Valid {
		return fmt.Errorf("sqlstore: append audit %s: bad time %v", e.Action, err)
	}
	detail, err := nullJSON(e.Detail, len(e.Detail) == 0)
	if err != nil {
		return fmt.Errorf("sqlstore: append audit %s: %w", e.Action, err)
	}
	q := s.q.insertAudit
	args := []any{at, e.Actor, e.ActorName, e.Role, e.Action, e.Target, e.RemoteAddr, e.Status, e.Outcome, detail}
	if err := s.w.do(ctx, "audit", stmt{q, args}); err != nil {
		return fmt.Errorf("sqlstore: append audit %s: %w", e.Action, err)
	}
	return nil
}

// ListAudit returns the entries matching f, newest (highest seq) first.
func (s *Store) ListAudit(ctx context.Context, f audit.Filter) ([]*audit.Entry, error) {
	var (
		where []string
		args  []any
	)
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		n, err := nanos(f.Since)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list audit: since: %w", err)
		}
		where, args = append(where, "at >= ?"), append(args, n)
	}
	if !f.Until.IsZero() {
		n, err := nanos(f.Until)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list audit: until: %w", err)
		}
		where, args = append(where, "at < ?"), append(args, n)
	}
	if f.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, f.Before)
	}
	q := "SELECT seq, " + strings.Join(auditColumns, ", ") + " FROM audit_log"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.dialect.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list audit: %w", err)
	}
	out, err := collect(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list audit: %w", err)
	}
	return out, nil
}

func scanAudit(row scanner) (*audit.Entry, error) {
	var (
		e      audit.Entry
		at     sql.NullInt64
		detail sql.NullString
	)
	if err := row.Scan(&e.Seq, &at, &e.Actor, &e.ActorName, &e.Role, &e.Action, &e.Target, &e.RemoteAddr, &e.Status, &e.Outcome, &detail); err != nil {
		return nil, err
	}
	e.At = fromNanos(at)
	if detail.Valid {
		if err := json.Unmarshal([]byte(detail.String), &e.Detail); err != nil {
			return nil, fmt.Errorf("audit %d detail: %w", e.Seq, err)
		}
	}
	return &e, nil
}
