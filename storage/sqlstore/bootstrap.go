package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
)

// The Bootstrap Server's store: bootstrap_configs and bootstrap_sessions (00011_bootstrap.sql);
// its PSKs are the CredentialTable BootstrapCredentials.
var _ bootstrap.Store = (*Store)(nil)

// SaveBootstrapConfig inserts or replaces the configuration of c's scope and name.
func (s *Store) SaveBootstrapConfig(ctx context.Context, c *bootstrap.Config) error {
	if c == nil || c.Scope == "" || c.Name == "" {
		return errors.New("sqlstore: save bootstrap config: no scope or name")
	}
	doc, err := jsonText(c)
	if err != nil {
		return fmt.Errorf("sqlstore: save bootstrap config %s:%s: %w", c.Scope, c.Name, err)
	}
	times, err := timeArgs(c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: save bootstrap config %s:%s: %w", c.Scope, c.Name, err)
	}
	q := s.dialect.rebind(upsert("bootstrap_configs", []string{"scope", "name"}, []string{"scope", "name", "updated_at", "doc"}))
	if err := s.w.do(ctx, "bootstrap-config:"+c.Name, stmt{q, []any{string(c.Scope), c.Name, times[0].Int64, doc}}); err != nil {
		return fmt.Errorf("sqlstore: save bootstrap config %s:%s: %w", c.Scope, c.Name, err)
	}
	return nil
}

// BootstrapConfig returns the configuration of scope and name.
func (s *Store) BootstrapConfig(ctx context.Context, scope bootstrap.Scope, name string) (*bootstrap.Config, error) {
	q := s.dialect.rebind("SELECT doc FROM bootstrap_configs WHERE scope = ? AND name = ?")
	c, err := scanBootstrapConfig(s.queryRow(ctx, q, string(scope), name))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap config %s:%s: %w", scope, name, err)
	}
	return c, nil
}

func scanBootstrapConfig(r scanner) (*bootstrap.Config, error) {
	var doc string
	if err := r.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, bootstrap.ErrNotFound
		}
		return nil, err
	}
	var c bootstrap.Config
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &c, nil
}

// DeleteBootstrapConfig removes a configuration; a missing one is bootstrap.ErrNotFound.
func (s *Store) DeleteBootstrapConfig(ctx context.Context, scope bootstrap.Scope, name string) error {
	q := s.dialect.rebind("DELETE FROM bootstrap_configs WHERE scope = ? AND name = ?")
	if err := s.w.doMatch(ctx, "bootstrap-config:"+name, bootstrap.ErrNotFound, stmt{q, []any{string(scope), name}}); err != nil {
		return fmt.Errorf("sqlstore: delete bootstrap config %s:%s: %w", scope, name, err)
	}
	return nil
}

// ListBootstrapConfigs returns every configuration, by scope and name.
func (s *Store) ListBootstrapConfigs(ctx context.Context) ([]*bootstrap.Config, error) {
	rows, err := s.query(ctx, "SELECT doc FROM bootstrap_configs ORDER BY scope, name")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap configs: %w", err)
	}
	out, err := collect(rows, scanBootstrapConfig)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap configs: %w", err)
	}
	return out, nil
}

// ResolveBootstrapConfig returns endpoint's own configuration, else that of one of its labels
// (device_labels; the first by label key), else the longest prefix of its name.
func (s *Store) ResolveBootstrapConfig(ctx context.Context, endpoint string) (*bootstrap.Config, error) {
	c, err := s.BootstrapConfig(ctx, bootstrap.ScopeEndpoint, endpoint)
	if !errors.Is(err, bootstrap.ErrNotFound) {
		return c, err
	}
	q := s.dialect.rebind("SELECT c.doc FROM bootstrap_configs c JOIN device_labels l ON c.scope = 'label' AND c.name = l.key || '=' || l.value" +
		" WHERE l.endpoint = ? ORDER BY l.key LIMIT 1")
	c, err = scanBootstrapConfig(s.queryRow(ctx, q, endpoint))
	if !errors.Is(err, bootstrap.ErrNotFound) {
		if err != nil {
			return nil, fmt.Errorf("sqlstore: bootstrap config of %s: %w", endpoint, err)
		}
		return c, nil
	}
	q = s.dialect.rebind("SELECT doc FROM bootstrap_configs WHERE scope = 'prefix' AND " +
		"name = substr(?, 1, length(name)) ORDER BY length(name) DESC LIMIT 1")
	c, err = scanBootstrapConfig(s.queryRow(ctx, q, endpoint))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap config of %s: %w", endpoint, err)
	}
	return c, nil
}

func (s *Store) sessionStmt(b *bootstrap.Session) (stmt, error) {
	doc, err := jsonText(b)
	if err != nil {
		return stmt{}, err
	}
	times, err := timeArgs(b.StartedAt)
	if err != nil {
		return stmt{}, err
	}
	q := s.dialect.rebind(upsert("bootstrap_sessions", []string{"id"}, []string{"id", "endpoint", "started_at", "outcome", "doc"}))
	return stmt{q, []any{b.ID, b.Endpoint, times[0].Int64, b.Outcome, doc}}, nil
}

// SaveBootstrapSession inserts or replaces a session.
func (s *Store) SaveBootstrapSession(ctx context.Context, b *bootstrap.Session) error {
	st, err := s.sessionStmt(b)
	if err != nil {
		return fmt.Errorf("sqlstore: save bootstrap session %s: %w", b.ID, err)
	}
	if err := s.w.do(ctx, "bootstrap:"+b.Endpoint, st); err != nil {
		return fmt.Errorf("sqlstore: save bootstrap session %s: %w", b.ID, err)
	}
	return nil
}

// FinishBootstrapSession stores the ended session and dm (when not nil) in device_credentials in
// one transaction. An identity another endpoint holds rolls both back
// (credentials.ErrIdentityTaken).
func (s *Store) FinishBootstrapSession(ctx context.Context, b *bootstrap.Session, dm *credentials.Sealed) error {
	st, err := s.sessionStmt(b)
	if err != nil {
		return fmt.Errorf("sqlstore: finish bootstrap session %s: %w", b.ID, err)
	}
	stmts := []stmt{st}
	if dm != nil {
		if dm.Endpoint != b.Endpoint || dm.Identity == "" {
			return fmt.Errorf("sqlstore: finish bootstrap session %s: credential of %q for endpoint %q", b.ID, dm.Endpoint, b.Endpoint)
		}
		cst, err := s.deviceCredentials().saveStmt(dm)
		if err != nil {
			return fmt.Errorf("sqlstore: finish bootstrap session %s: %w", b.ID, err)
		}
		stmts = append(stmts, cst)
	}
	if err := s.w.do(ctx, "bootstrap:"+b.Endpoint, stmts...); err != nil {
		if isUniqueViolation(err, "identity") {
			return fmt.Errorf("sqlstore: finish bootstrap session %s: %w (%v)", b.ID, credentials.ErrIdentityTaken, err)
		}
		return fmt.Errorf("sqlstore: finish bootstrap session %s: %w", b.ID, err)
	}
	return nil
}

// BootstrapSessions returns endpoint's sessions, newest first.
func (s *Store) BootstrapSessions(ctx context.Context, endpoint string, limit int) ([]*bootstrap.Session, error) {
	if limit <= 0 {
		limit = -1
	}
	q := s.dialect.rebind("SELECT doc FROM bootstrap_sessions WHERE endpoint = ? ORDER BY started_at DESC, id DESC LIMIT ?")
	if limit < 0 {
		q = s.dialect.rebind("SELECT doc FROM bootstrap_sessions WHERE endpoint = ? ORDER BY started_at DESC, id DESC")
	}
	args := []any{endpoint}
	if limit > 0 {
		args = append(args, limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap sessions of %s: %w", endpoint, err)
	}
	out, err := collect(rows, func(r scanner) (*bootstrap.Session, error) {
		var doc string
		if err := r.Scan(&doc); err != nil {
			return nil, err
		}
		var b bootstrap.Session
		if err := json.Unmarshal([]byte(doc), &b); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		return &b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: bootstrap sessions of %s: %w", endpoint, err)
	}
	return out, nil
}
