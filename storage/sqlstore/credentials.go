package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lwota/lwota/server/credentials"
)

// The credential manager's store.
var _ credentials.Store = (*Store)(nil)

var credentialColumns = []string{"endpoint", "identity", "nonce", "sealed_key", "created_at", "updated_at"}

func (s *Store) credentialQuery(where string) string {
	return s.dialect.rebind("SELECT " + strings.Join(credentialColumns, ", ") + " FROM device_credentials WHERE " + where + " = ?")
}

// SaveCredential inserts or replaces the credential of c.Endpoint. An identity another endpoint
// holds violates the unique index: credentials.ErrIdentityTaken.
func (s *Store) SaveCredential(ctx context.Context, c *credentials.Sealed) error {
	if c == nil || c.Endpoint == "" || c.Identity == "" {
		return errors.New("sqlstore: save credential: no endpoint or identity")
	}
	times, err := timeArgs(c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: save credential %s: %w", c.Endpoint, err)
	}
	q := s.dialect.rebind(upsert("device_credentials", []string{"endpoint"}, credentialColumns))
	args := []any{c.Endpoint, c.Identity, c.Nonce, c.SealedKey, times[0], times[1]}
	if err := s.w.do(ctx, "credential:"+c.Endpoint, stmt{q, args}); err != nil {
		if msg := err.Error(); strings.Contains(msg, "identity") && (strings.Contains(msg, "UNIQUE") || strings.Contains(msg, "unique")) {
			return fmt.Errorf("sqlstore: save credential %s: %w (%v)", c.Endpoint, credentials.ErrIdentityTaken, err)
		}
		return fmt.Errorf("sqlstore: save credential %s: %w", c.Endpoint, err)
	}
	return nil
}

// CredentialByIdentity returns the credential whose PSK identity is identity.
func (s *Store) CredentialByIdentity(ctx context.Context, identity string) (*credentials.Sealed, error) {
	return s.credential(ctx, "identity", identity)
}

// CredentialByEndpoint returns endpoint's credential.
func (s *Store) CredentialByEndpoint(ctx context.Context, endpoint string) (*credentials.Sealed, error) {
	return s.credential(ctx, "endpoint", endpoint)
}

func (s *Store) credential(ctx context.Context, col, v string) (*credentials.Sealed, error) {
	var (
		c                credentials.Sealed
		created, updated sql.NullInt64
	)
	err := s.queryRow(ctx, s.credentialQuery(col), v).Scan(&c.Endpoint, &c.Identity, &c.Nonce, &c.SealedKey, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		err = credentials.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credential %s %q: %w", col, v, err)
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return &c, nil
}

// DeleteCredential removes endpoint's credential; a missing one is credentials.ErrNotFound.
func (s *Store) DeleteCredential(ctx context.Context, endpoint string) error {
	q := s.dialect.rebind("DELETE FROM device_credentials WHERE endpoint = ?")
	if err := s.w.doMatch(ctx, "credential:"+endpoint, credentials.ErrNotFound, stmt{q, []any{endpoint}}); err != nil {
		return fmt.Errorf("sqlstore: delete credential %s: %w", endpoint, err)
	}
	return nil
}
