package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lwota/lwota/server/credentials"
)

// The credential manager's store.
var _ credentials.Store = (*Store)(nil)

var credentialColumns = []string{"endpoint", "identity", "nonce", "sealed_key", "created_at", "updated_at", "key_id"}

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
	args := []any{c.Endpoint, c.Identity, c.Nonce, c.SealedKey, times[0], times[1], int64(c.KeyID)}
	if err := s.w.do(ctx, "credential:"+c.Endpoint, stmt{q, args}); err != nil {
		if isUniqueViolation(err, "identity") {
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
		keyID            int64
	)
	err := s.queryRow(ctx, s.credentialQuery(col), v).Scan(&c.Endpoint, &c.Identity, &c.Nonce, &c.SealedKey, &created, &updated, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		err = credentials.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credential %s %q: %w", col, v, err)
	}
	c.CreatedAt, c.UpdatedAt, c.KeyID = fromNanos(created), fromNanos(updated), uint32(keyID)
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

// CredentialRefs returns the credentials (without keys) whose endpoint is in endpoints or whose
// identity is in identities. Callers keep each list to a few hundred names (one statement).
func (s *Store) CredentialRefs(ctx context.Context, endpoints, identities []string) ([]credentials.Ref, error) {
	if len(endpoints) == 0 && len(identities) == 0 {
		return nil, nil
	}
	var (
		where []string
		args  []any
	)
	for col, vs := range map[string][]string{"endpoint": endpoints, "identity": identities} {
		if len(vs) == 0 {
			continue
		}
		where = append(where, col+" IN ("+placeholders(len(vs))+")")
		for _, v := range vs {
			args = append(args, v)
		}
	}
	q := s.dialect.rebind("SELECT endpoint, identity, created_at FROM device_credentials WHERE " + strings.Join(where, " OR "))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credential refs: %w", err)
	}
	refs, err := collect(rows, func(r scanner) (credentials.Ref, error) {
		var (
			ref     credentials.Ref
			created sql.NullInt64
		)
		err := r.Scan(&ref.Endpoint, &ref.Identity, &created)
		ref.CreatedAt = fromNanos(created)
		return ref, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credential refs: %w", err)
	}
	return refs, nil
}

// Statement sizes of SaveCredentials: endpoints per DELETE, rows per multi-row INSERT (7
// parameters each; SQLite and PostgreSQL take far more than the 700 this makes).
const (
	credentialDeleteChunk = 500
	credentialInsertChunk = 100
)

// SaveCredentials replaces the credentials of cs's endpoints in one transaction: their old rows
// are deleted first, so identities may move between these endpoints; then the rows are inserted.
// An identity held by an endpoint outside cs violates the unique index, the transaction rolls
// back, and the error matches credentials.ErrIdentityTaken.
func (s *Store) SaveCredentials(ctx context.Context, cs []*credentials.Sealed) error {
	if len(cs) == 0 {
		return nil
	}
	var stmts []stmt
	for chunk := range slices.Chunk(cs, credentialDeleteChunk) {
		args := make([]any, len(chunk))
		for i, c := range chunk {
			if c == nil || c.Endpoint == "" || c.Identity == "" {
				return errors.New("sqlstore: save credentials: no endpoint or identity")
			}
			args[i] = c.Endpoint
		}
		stmts = append(stmts, stmt{s.dialect.rebind("DELETE FROM device_credentials WHERE endpoint IN (" + placeholders(len(chunk)) + ")"), args})
	}
	row := "(" + placeholders(len(credentialColumns)) + ")"
	for chunk := range slices.Chunk(cs, credentialInsertChunk) {
		args := make([]any, 0, len(chunk)*len(credentialColumns))
		for _, c := range chunk {
			times, err := timeArgs(c.CreatedAt, c.UpdatedAt)
			if err != nil {
				return fmt.Errorf("sqlstore: save credentials %s: %w", c.Endpoint, err)
			}
			args = append(args, c.Endpoint, c.Identity, c.Nonce, c.SealedKey, times[0], times[1], int64(c.KeyID))
		}
		q := "INSERT INTO device_credentials (" + strings.Join(credentialColumns, ", ") + ") VALUES " +
			strings.Repeat(row+", ", len(chunk)-1) + row
		stmts = append(stmts, stmt{s.dialect.rebind(q), args})
	}
	if err := s.w.do(ctx, "credentials:import", stmts...); err != nil {
		if isUniqueViolation(err, "identity") {
			return fmt.Errorf("sqlstore: save %d credentials: %w (%v)", len(cs), credentials.ErrIdentityTaken, err)
		}
		return fmt.Errorf("sqlstore: save %d credentials: %w", len(cs), err)
	}
	return nil
}

// placeholders is "?, ?, ..." n times.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// isUniqueViolation reports a unique index violation on col, in SQLite's or PostgreSQL's words.
func isUniqueViolation(err error, col string) bool {
	msg := err.Error()
	return strings.Contains(msg, col) && (strings.Contains(msg, "UNIQUE") || strings.Contains(msg, "unique"))
}

// CredentialsNotSealedWith returns up to limit credentials sealed with a key other than keyID,
// by endpoint after the endpoint after (the re-seal sweep's cursor).
func (s *Store) CredentialsNotSealedWith(ctx context.Context, keyID uint32, after string, limit int) ([]*credentials.Sealed, error) {
	q := s.dialect.rebind("SELECT " + strings.Join(credentialColumns, ", ") +
		" FROM device_credentials WHERE key_id <> ? AND endpoint > ? ORDER BY endpoint LIMIT ?")
	rows, err := s.db.QueryContext(ctx, q, int64(keyID), after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credentials to re-seal: %w", err)
	}
	cs, err := collect(rows, func(r scanner) (*credentials.Sealed, error) {
		var (
			c                credentials.Sealed
			created, updated sql.NullInt64
			id               int64
		)
		err := r.Scan(&c.Endpoint, &c.Identity, &c.Nonce, &c.SealedKey, &created, &updated, &id)
		c.CreatedAt, c.UpdatedAt, c.KeyID = fromNanos(created), fromNanos(updated), uint32(id)
		return &c, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credentials to re-seal: %w", err)
	}
	return cs, nil
}

// ResealCredential replaces the sealed key of c.Endpoint with c's, only while the row still holds
// the nonce oldNonce: a credential written meanwhile (Put, import) is left alone,
// credentials.ErrNotFound.
func (s *Store) ResealCredential(ctx context.Context, c *credentials.Sealed, oldNonce []byte) error {
	q := s.dialect.rebind("UPDATE device_credentials SET nonce = ?, sealed_key = ?, key_id = ? WHERE endpoint = ? AND identity = ? AND nonce = ?")
	args := []any{c.Nonce, c.SealedKey, int64(c.KeyID), c.Endpoint, c.Identity, oldNonce}
	if err := s.w.doMatch(ctx, "credential:"+c.Endpoint, credentials.ErrNotFound, stmt{q, args}); err != nil {
		return fmt.Errorf("sqlstore: re-seal credential %s: %w", c.Endpoint, err)
	}
	return nil
}
