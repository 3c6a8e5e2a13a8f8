package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwota/lwota/server/credentials/keyring"
)

// The cluster keyring's store.
var _ keyring.Store = (*Store)(nil)

// sealedTables are the tables whose rows are sealed with a credential-seal key and record its
// key_id: a key still referenced by any of them is not retired.
var sealedTables = []string{"device_credentials", "bootstrap_credentials"}

// errNoRetire is RetireClusterKey's no-row result, classified after the write.
var errNoRetire = errors.New("sqlstore: retire: no row matched")

// ClusterKeys returns the keys of purpose by ascending id.
func (s *Store) ClusterKeys(ctx context.Context, purpose string) ([]keyring.Sealed, error) {
	q := s.dialect.rebind("SELECT key_id, state, nonce, sealed, created_at FROM cluster_keys WHERE purpose = ? ORDER BY key_id")
	rows, err := s.db.QueryContext(ctx, q, purpose)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: cluster keys %s: %w", purpose, err)
	}
	keys, err := collect(rows, func(r scanner) (keyring.Sealed, error) {
		k := keyring.Sealed{Purpose: purpose}
		var (
			id      int64
			created sql.NullInt64
		)
		err := r.Scan(&id, &k.State, &k.Nonce, &k.Secret, &created)
		k.ID, k.CreatedAt = uint32(id), fromNanos(created)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: cluster keys %s: %w", purpose, err)
	}
	return keys, nil
}

// AddFirstClusterKey inserts k unless its purpose has a key. Two nodes inserting at once both
// pass NOT EXISTS under READ COMMITTED, but only one row with k's id can exist: ON CONFLICT DO
// NOTHING leaves the loser's write a no-op.
func (s *Store) AddFirstClusterKey(ctx context.Context, k keyring.Sealed) error {
	created, err := nanos(k.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: add cluster key %s: %w", k.Purpose, err)
	}
	q := s.dialect.rebind(`INSERT INTO cluster_keys (purpose, key_id, state, nonce, sealed, created_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM cluster_keys WHERE purpose = ?)
		ON CONFLICT (purpose, key_id) DO NOTHING`)
	args := []any{k.Purpose, int64(k.ID), k.State, k.Nonce, k.Secret, created, k.Purpose}
	if err := s.w.do(ctx, "cluster-keys", stmt{q, args}); err != nil {
		return fmt.Errorf("sqlstore: add cluster key %s: %w", k.Purpose, err)
	}
	return nil
}

// RotateClusterKey demotes every key of k's purpose to accepted and inserts k as the active one,
// in one transaction: a reader never sees two active keys or none.
func (s *Store) RotateClusterKey(ctx context.Context, k keyring.Sealed) error {
	created, err := nanos(k.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: rotate cluster key %s: %w", k.Purpose, err)
	}
	demote := stmt{s.dialect.rebind("UPDATE cluster_keys SET state = ? WHERE purpose = ?"), []any{keyring.Accepted, k.Purpose}}
	add := stmt{s.dialect.rebind("INSERT INTO cluster_keys (purpose, key_id, state, nonce, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
		[]any{k.Purpose, int64(k.ID), keyring.Active, k.Nonce, k.Secret, created}}
	if err := s.w.do(ctx, "cluster-keys", demote, add); err != nil {
		if isUniqueViolation(err, "cluster_keys") {
			return fmt.Errorf("sqlstore: rotate cluster key %s to %d: %w", k.Purpose, k.ID, keyring.ErrConflict)
		}
		return fmt.Errorf("sqlstore: rotate cluster key %s: %w", k.Purpose, err)
	}
	return nil
}

// RetireClusterKey deletes an accepted key. The check that no credential row is sealed with a
// credential-seal key is part of the DELETE, so a row sealed concurrently keeps its key.
func (s *Store) RetireClusterKey(ctx context.Context, purpose string, id uint32) error {
	q := "DELETE FROM cluster_keys WHERE purpose = ? AND key_id = ? AND state = ?"
	args := []any{purpose, int64(id), keyring.Accepted}
	if purpose == keyring.CredentialSeal {
		for _, table := range sealedTables {
			q += " AND NOT EXISTS (SELECT 1 FROM " + table + " WHERE key_id = ?)"
			args = append(args, int64(id))
		}
	}
	err := s.w.doMatch(ctx, "cluster-keys", errNoRetire, stmt{s.dialect.rebind(q), args})
	if !errors.Is(err, errNoRetire) {
		if err != nil {
			return fmt.Errorf("sqlstore: retire cluster key %s %d: %w", purpose, id, err)
		}
		return nil
	}
	var state string
	err = s.db.QueryRowContext(ctx, s.dialect.rebind("SELECT state FROM cluster_keys WHERE purpose = ? AND key_id = ?"), purpose, int64(id)).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = keyring.ErrNotFound
	case err != nil:
	case state == keyring.Active:
		err = keyring.ErrActive
	default:
		err = keyring.ErrInUse
	}
	return fmt.Errorf("sqlstore: retire cluster key %s %d: %w", purpose, id, err)
}
