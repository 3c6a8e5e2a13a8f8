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

// The credential manager's store: device_credentials through the Store's own methods, and
// bootstrap_credentials through BootstrapCredentials.
var (
	_ credentials.Store   = (*Store)(nil)
	_ credentials.Store   = CredentialTable{}
	_ credentials.Exister = (*Store)(nil)
)

// CredentialTable is one table of sealed PSK credentials. Both tables have the same columns and
// the same rules (identity UNIQUE); only the listener that looks them up differs.
type CredentialTable struct {
	s     *Store
	table string
}

// BootstrapCredentials is the store of the devices' bootstrap PSKs (bootstrap_credentials), which
// the Bootstrap Server's DTLS listener looks up; they never open lwota's DM listener.
func (s *Store) BootstrapCredentials() CredentialTable {
	return CredentialTable{s, "bootstrap_credentials"}
}

func (s *Store) deviceCredentials() CredentialTable { return CredentialTable{s, "device_credentials"} }

// SaveCredential: see CredentialTable.SaveCredential (device_credentials).
func (s *Store) SaveCredential(ctx context.Context, c *credentials.Sealed) error {
	return s.deviceCredentials().SaveCredential(ctx, c)
}

// CredentialByIdentity: see CredentialTable.CredentialByIdentity (device_credentials).
func (s *Store) CredentialByIdentity(ctx context.Context, identity string) (*credentials.Sealed, error) {
	return s.deviceCredentials().CredentialByIdentity(ctx, identity)
}

// CredentialByEndpoint: see CredentialTable.CredentialByEndpoint (device_credentials).
func (s *Store) CredentialByEndpoint(ctx context.Context, endpoint string) (*credentials.Sealed, error) {
	return s.deviceCredentials().CredentialByEndpoint(ctx, endpoint)
}

// HasCredential: see CredentialTable.HasCredential (device_credentials).
func (s *Store) HasCredential(ctx context.Context, endpoint string) (bool, error) {
	if s.credExists != nil {
		_, ok, err := s.credExists.get(ctx, endpoint)
		if err != nil {
			return false, fmt.Errorf("sqlstore: credential of %q: %w", endpoint, err)
		}
		return ok, nil
	}
	if s.credCheck != nil {
		has, err := s.credCheck.has(ctx, endpoint)
		if err != nil {
			return false, fmt.Errorf("sqlstore: credential of %q: %w", endpoint, err)
		}
		return has, nil
	}
	return s.deviceCredentials().HasCredential(ctx, endpoint)
}

// DeleteCredential: see CredentialTable.DeleteCredential (device_credentials).
func (s *Store) DeleteCredential(ctx context.Context, endpoint string) error {
	return s.deviceCredentials().DeleteCredential(ctx, endpoint)
}

// CredentialRefs: see CredentialTable.CredentialRefs (device_credentials).
func (s *Store) CredentialRefs(ctx context.Context, endpoints, identities []string) ([]credentials.Ref, error) {
	return s.deviceCredentials().CredentialRefs(ctx, endpoints, identities)
}

// CredentialsNotSealedWith: see CredentialTable.CredentialsNotSealedWith (device_credentials).
func (s *Store) CredentialsNotSealedWith(ctx context.Context, keyID uint32, after string, limit int) ([]*credentials.Sealed, error) {
	return s.deviceCredentials().CredentialsNotSealedWith(ctx, keyID, after, limit)
}

// ResealCredential: see CredentialTable.ResealCredential (device_credentials).
func (s *Store) ResealCredential(ctx context.Context, c *credentials.Sealed, oldNonce []byte) error {
	return s.deviceCredentials().ResealCredential(ctx, c, oldNonce)
}

// SaveCredentials: see CredentialTable.SaveCredentials (device_credentials).
func (s *Store) SaveCredentials(ctx context.Context, cs []*credentials.Sealed) error {
	return s.deviceCredentials().SaveCredentials(ctx, cs)
}

var credentialColumns = []string{"endpoint", "identity", "nonce", "sealed_key", "created_at", "updated_at", "key_id"}

func (t CredentialTable) credentialQuery(where string) string {
	return t.s.dialect.rebind("SELECT " + strings.Join(credentialColumns, ", ") + " FROM " + t.table + " WHERE " + where + " = ?")
}

// saveStmt is the upsert of one credential row.
func (t CredentialTable) saveStmt(c *credentials.Sealed) (stmt, error) {
	times, err := timeArgs(c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return stmt{}, err
	}
	q := t.s.dialect.rebind(upsert(t.table, []string{"endpoint"}, credentialColumns))
	return stmt{q, []any{c.Endpoint, c.Identity, c.Nonce, c.SealedKey, times[0], times[1], int64(c.KeyID)}}, nil
}

// SaveCredential inserts or replaces the credential of c.Endpoint. An identity another endpoint
// holds violates the unique index: credentials.ErrIdentityTaken.
func (t CredentialTable) SaveCredential(ctx context.Context, c *credentials.Sealed) error {
	if c == nil || c.Endpoint == "" || c.Identity == "" {
		return errors.New("sqlstore: save credential: no endpoint or identity")
	}
	st, err := t.saveStmt(c)
	if err != nil {
		return fmt.Errorf("sqlstore: save credential %s: %w", c.Endpoint, err)
	}
	if err := t.s.w.do(ctx, t.table+":"+c.Endpoint, st); err != nil {
		if isUniqueViolation(err, "identity") {
			return fmt.Errorf("sqlstore: save credential %s: %w (%v)", c.Endpoint, credentials.ErrIdentityTaken, err)
		}
		return fmt.Errorf("sqlstore: save credential %s: %w", c.Endpoint, err)
	}
	return nil
}

// CredentialByIdentity returns the credential whose PSK identity is identity.
func (t CredentialTable) CredentialByIdentity(ctx context.Context, identity string) (*credentials.Sealed, error) {
	return t.credential(ctx, "identity", identity)
}

// CredentialByEndpoint returns endpoint's credential.
func (t CredentialTable) CredentialByEndpoint(ctx context.Context, endpoint string) (*credentials.Sealed, error) {
	return t.credential(ctx, "endpoint", endpoint)
}

func (t CredentialTable) credential(ctx context.Context, col, v string) (*credentials.Sealed, error) {
	var (
		c                credentials.Sealed
		created, updated sql.NullInt64
		keyID            int64
	)
	err := t.s.queryRow(ctx, t.credentialQuery(col), v).Scan(&c.Endpoint, &c.Identity, &c.Nonce, &c.SealedKey, &created, &updated, &keyID)
	if errors.Is(err, sql.ErrNoRows) {
		err = credentials.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: credential %s %q: %w", col, v, err)
	}
	c.CreatedAt, c.UpdatedAt, c.KeyID = fromNanos(created), fromNanos(updated), uint32(keyID)
	return &c, nil
}

// HasCredential reports whether endpoint has a credential (credentials.Exister): one index
// probe that reads no column, where CredentialByEndpoint reads and decodes the sealed row. It
// answers every NoSec Register and Update.
func (t CredentialTable) HasCredential(ctx context.Context, endpoint string) (bool, error) {
	var one int
	err := t.s.queryRow(t.s.pointRead(ctx), t.s.dialect.rebind("SELECT 1 FROM "+t.table+" WHERE endpoint = ?"), endpoint).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	}
	return false, fmt.Errorf("sqlstore: credential of %q: %w", endpoint, err)
}

// DeleteCredential removes endpoint's credential; a missing one is credentials.ErrNotFound.
func (t CredentialTable) DeleteCredential(ctx context.Context, endpoint string) error {
	q := t.s.dialect.rebind("DELETE FROM " + t.table + " WHERE endpoint = ?")
	if err := t.s.w.doMatch(ctx, t.table+":"+endpoint, credentials.ErrNotFound, stmt{q, []any{endpoint}}); err != nil {
		return fmt.Errorf("sqlstore: delete credential %s: %w", endpoint, err)
	}
	return nil
}

// CredentialRefs returns the credentials (without keys) whose endpoint is in endpoints or whose
// identity is in identities. Callers keep each list to a few hundred names (one statement).
func (t CredentialTable) CredentialRefs(ctx context.Context, endpoints, identities []string) ([]credentials.Ref, error) {
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
	q := t.s.dialect.rebind("SELECT endpoint, identity, created_at FROM " + t.table + " WHERE " + strings.Join(where, " OR "))
	rows, err := t.s.db.QueryContext(ctx, q, args...)
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
func (t CredentialTable) SaveCredentials(ctx context.Context, cs []*credentials.Sealed) error {
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
		stmts = append(stmts, stmt{t.s.dialect.rebind("DELETE FROM " + t.table + " WHERE endpoint IN (" + placeholders(len(chunk)) + ")"), args})
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
		q := "INSERT INTO " + t.table + " (" + strings.Join(credentialColumns, ", ") + ") VALUES " +
			strings.Repeat(row+", ", len(chunk)-1) + row
		stmts = append(stmts, stmt{t.s.dialect.rebind(q), args})
	}
	if err := t.s.w.do(ctx, t.table+":import", stmts...); err != nil {
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
func (t CredentialTable) CredentialsNotSealedWith(ctx context.Context, keyID uint32, after string, limit int) ([]*credentials.Sealed, error) {
	q := t.s.dialect.rebind("SELECT " + strings.Join(credentialColumns, ", ") +
		" FROM " + t.table + " WHERE key_id <> ? AND endpoint > ? ORDER BY endpoint LIMIT ?")
	rows, err := t.s.db.QueryContext(ctx, q, int64(keyID), after, limit)
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
func (t CredentialTable) ResealCredential(ctx context.Context, c *credentials.Sealed, oldNonce []byte) error {
	q := t.s.dialect.rebind("UPDATE " + t.table + " SET nonce = ?, sealed_key = ?, key_id = ? WHERE endpoint = ? AND identity = ? AND nonce = ?")
	args := []any{c.Nonce, c.SealedKey, int64(c.KeyID), c.Endpoint, c.Identity, oldNonce}
	if err := t.s.w.doMatch(ctx, t.table+":"+c.Endpoint, credentials.ErrNotFound, stmt{q, args}); err != nil {
		return fmt.Errorf("sqlstore: re-seal credential %s: %w", c.Endpoint, err)
	}
	return nil
}
