package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

// The firmware catalog's store.
var _ firmware.Store = (*Store)(nil)

// SaveKey inserts or replaces the signing key k (by ID): a revocation is a save with RevokedAt
// set. Fingerprints are unique: saving another ID with a fingerprint already stored fails.
func (s *Store) SaveKey(ctx context.Context, k *signing.Key) error {
	if k == nil || k.ID == "" {
		return errors.New("sqlstore: save key: no id")
	}
	times, err := timeArgs(k.CreatedAt, k.RevokedAt)
	if err != nil {
		return fmt.Errorf("sqlstore: save key %s: %w", k.ID, err)
	}
	args := []any{k.ID, k.Name, string(k.Algorithm), k.PublicKeyPEM, k.Fingerprint, times[0], times[1]}
	if err := s.w.do(ctx, "key:"+k.ID, stmt{s.q.saveKey, args}); err != nil {
		return fmt.Errorf("sqlstore: save key %s: %w", k.ID, err)
	}
	return nil
}

// GetKey returns the key id, revoked or not, or an error matching firmware.ErrKeyNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (*signing.Key, error) {
	k, err := scanKey(s.queryRow(ctx, s.q.getKey, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = firmware.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get key %s: %w", id, err)
	}
	return k, nil
}

// ListKeys returns every key, revoked ones included, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]*signing.Key, error) {
	rows, err := s.query(ctx, s.q.listKeys)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list keys: %w", err)
	}
	out, err := collect(rows, scanKey)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list keys: %w", err)
	}
	return out, nil
}

// scanKey reads one row of keyColumns.
func scanKey(row interface{ Scan(...any) error }) (*signing.Key, error) {
	var (
		k                signing.Key
		alg              string
		created, revoked sql.NullInt64
	)
	if err := row.Scan(&k.ID, &k.Name, &alg, &k.PublicKeyPEM, &k.Fingerprint, &created, &revoked); err != nil {
		return nil, err
	}
	k.Algorithm = signing.Algorithm(alg)
	k.CreatedAt = fromNanos(created)
	k.RevokedAt = fromNanos(revoked)
	return &k, nil
}
