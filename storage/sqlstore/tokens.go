package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lwota/lwota/server/apitoken"
)

// The API token manager's store.
var _ apitoken.Store = (*Store)(nil)

var tokenColumns = []string{"id", "name", "role", "secret_hash", "created_at", "created_by", "last_used_at", "revoked_at"}

func (s *Store) tokenQuery(tail string) string {
	return s.dialect.rebind("SELECT " + strings.Join(tokenColumns, ", ") + " FROM api_tokens " + tail)
}

// SaveToken inserts t; an id or secret hash already stored fails.
func (s *Store) SaveToken(ctx context.Context, t *apitoken.Token) error {
	if t == nil || t.ID == "" || t.SecretHash == "" {
		return errors.New("sqlstore: save token: no id or secret hash")
	}
	times, err := timeArgs(t.CreatedAt, t.LastUsedAt, t.RevokedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: save token %s: %w", t.ID, err)
	}
	q := s.dialect.rebind(insert("api_tokens", tokenColumns))
	args := []any{t.ID, t.Name, string(t.Role), t.SecretHash, times[0], t.CreatedBy, times[1], times[2]}
	if err := s.w.do(ctx, "token:"+t.ID, stmt{q, args}); err != nil {
		return fmt.Errorf("sqlstore: save token %s: %w", t.ID, err)
	}
	return nil
}

// Token returns the token id, revoked or not, or an error matching apitoken.ErrNotFound.
func (s *Store) Token(ctx context.Context, id string) (*apitoken.Token, error) {
	return s.oneToken(ctx, "id", id)
}

// TokenByHash returns the token whose secret hashes to hash, or apitoken.ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*apitoken.Token, error) {
	return s.oneToken(ctx, "secret_hash", hash)
}

func (s *Store) oneToken(ctx context.Context, col, v string) (*apitoken.Token, error) {
	t, err := scanToken(s.queryRow(ctx, s.tokenQuery("WHERE "+col+" = ?"), v))
	if errors.Is(err, sql.ErrNoRows) {
		err = apitoken.ErrNotFound
	}
	if err != nil {
		if col == "secret_hash" {
			v = "(secret)"
		}
		return nil, fmt.Errorf("sqlstore: token %s: %w", v, err)
	}
	return t, nil
}

// ListTokens returns every token, revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]*apitoken.Token, error) {
	rows, err := s.query(ctx, s.tokenQuery("ORDER BY created_at, id"))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list tokens: %w", err)
	}
	out, err := collect(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken sets revoked_at unless it is set already; an unknown id is apitoken.ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	n, err := nanos(at)
	if err != nil {
		return fmt.Errorf("sqlstore: revoke token %s: %w", id, err)
	}
	q := s.dialect.rebind("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
	if err := s.w.doMatch(ctx, "token:"+id, apitoken.ErrNotFound, stmt{q, []any{n, id}}); err != nil {
		return fmt.Errorf("sqlstore: revoke token %s: %w", id, err)
	}
	return nil
}

// TouchToken sets last_used_at; an unknown id is apitoken.ErrNotFound.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	n, err := nanos(at)
	if err != nil {
		return fmt.Errorf("sqlstore: touch token %s: %w", id, err)
	}
	q := s.dialect.rebind("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
	if err := s.w.doMatch(ctx, "token:"+id, apitoken.ErrNotFound, stmt{q, []any{n, id}}); err != nil {
		return fmt.Errorf("sqlstore: touch token %s: %w", id, err)
	}
	return nil
}

func scanToken(row scanner) (*apitoken.Token, error) {
	var (
		t                      apitoken.Token
		role                   string
		created, used, revoked sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Name, &role, &t.SecretHash, &created, &t.CreatedBy, &used, &revoked); err != nil {
		return nil, err
	}
	t.Role = apitoken.Role(role)
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = fromNanos(created), fromNanos(used), fromNanos(revoked)
	return &t, nil
}
