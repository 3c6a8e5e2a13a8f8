// Package keyring keeps the secrets every lwota node of a cluster shares (the download-token key
// and the credential-sealing key) in the database, sealed under the cluster key, with rotation.
package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Purposes: what a key is for. Each purpose has its own versioned keys.
const (
	// DownloadToken keys authenticate the tokens of firmware download URIs (firmware/transfer).
	DownloadToken = "download-token"
	// CredentialSeal keys seal device PSKs at rest (server/credentials).
	CredentialSeal = "credential-seal"
)

// Purposes lists every purpose, in the order Open loads them.
var Purposes = []string{DownloadToken, CredentialSeal}

// Key states.
const (
	// Active: the one key per purpose that mints tokens and seals new rows.
	Active = "active"
	// Accepted: an older key that still verifies tokens and opens rows until it is retired.
	Accepted = "accepted"
)

// KeyLen is the length of the cluster key and of every key in the ring (AES-256, HMAC-SHA256).
const KeyLen = 32

// Errors callers branch on.
var (
	// ErrWrongClusterKey: the cluster key does not open the keys stored in the database.
	ErrWrongClusterKey = errors.New("keyring: the cluster key does not open the keys in the database (is --cluster-key the same on every node?)")
	// ErrNotFound: no such purpose or key.
	ErrNotFound = errors.New("keyring: key not found")
	// ErrActive: the active key cannot be retired; rotate first.
	ErrActive = errors.New("keyring: the active key cannot be retired")
	// ErrInUse: sealed rows still reference the key; re-seal them first.
	ErrInUse = errors.New("keyring: key still in use by sealed rows")
	// ErrConflict: another node rotated the same purpose at the same moment.
	ErrConflict = errors.New("keyring: concurrent rotation")
	// ErrInvalid: a bad purpose or key.
	ErrInvalid = errors.New("keyring: invalid")
)

// Sealed is one key as stored: Secret sealed (AES-256-GCM) under the cluster key with Nonce, with
// purpose and id as additional data, so a sealed key opens in its own row only.
type Sealed struct {
	Purpose   string
	ID        uint32
	State     string
	Nonce     []byte
	Secret    []byte
	CreatedAt time.Time
}

// Store persists sealed keys. Implementations: storage/sqlstore (SQLite and PostgreSQL).
type Store interface {
	// ClusterKeys returns the keys of purpose, by ascending id.
	ClusterKeys(ctx context.Context, purpose string) ([]Sealed, error)
	// AddFirstClusterKey stores k (active) unless purpose already has a key, in which case it
	// changes nothing and returns nil: nodes starting at once race-free agree on one first key.
	AddFirstClusterKey(ctx context.Context, k Sealed) error
	// RotateClusterKey stores k as the active key of its purpose and makes every other key of it
	// accepted, in one transaction; an id already taken is ErrConflict.
	RotateClusterKey(ctx context.Context, k Sealed) error
	// RetireClusterKey deletes an accepted key: ErrNotFound, ErrActive, or (credential-seal)
	// ErrInUse while a credential row is still sealed with it.
	RetireClusterKey(ctx context.Context, purpose string, id uint32) error
}

// Key is one opened key.
type Key struct {
	ID     uint32
	State  string
	Secret []byte
}

// Set is the keys of one purpose: the active one first, then the accepted ones, newest first.
type Set struct {
	Purpose string
	Keys    []Key
}

// Active returns the key that mints and seals.
func (s Set) Active() Key { return s.Keys[0] }

// Equal reports whether two sets hold the same key ids in the same states.
func (s Set) Equal(o Set) bool {
	return s.Purpose == o.Purpose && slices.EqualFunc(s.Keys, o.Keys, func(a, b Key) bool { return a.ID == b.ID && a.State == b.State })
}

// Ring opens, creates and rotates the keys. It is safe for concurrent use.
type Ring struct {
	store Store
	kek   cipher.AEAD
	log   *slog.Logger
	now   func() time.Time
}

// ParseClusterKey decodes the cluster key: 64 hex characters.
func ParseClusterKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != KeyLen {
		return nil, fmt.Errorf("%w: the cluster key must be %d hex characters (%d random bytes, e.g. `openssl rand -hex 32`)", ErrInvalid, 2*KeyLen, KeyLen)
	}
	return key, nil
}

// New returns a Ring over store sealing keys under clusterKey (32 bytes). A nil logger discards.
func New(store Store, clusterKey []byte, logger *slog.Logger) (*Ring, error) {
	if len(clusterKey) != KeyLen {
		return nil, fmt.Errorf("%w: cluster key is %d bytes, want %d", ErrInvalid, len(clusterKey), KeyLen)
	}
	block, err := aes.NewCipher(clusterKey)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ring{store: store, kek: aead, log: logger, now: time.Now}, nil
}

func checkPurpose(p string) error {
	if !slices.Contains(Purposes, p) {
		return fmt.Errorf("%w: purpose %q (want %s)", ErrInvalid, p, strings.Join(Purposes, " or "))
	}
	return nil
}

// additionalData binds a sealed key to its purpose and id.
func additionalData(purpose string, id uint32) []byte {
	var b bytes.Buffer
	b.WriteString("lwota-keyring-v1\x00")
	b.WriteString(purpose)
	b.WriteByte(0)
	_ = binary.Write(&b, binary.BigEndian, id)
	return b.Bytes()
}

func (r *Ring) seal(purpose string, id uint32, state string, secret []byte) (Sealed, error) {
	nonce := make([]byte, r.kek.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("keyring: nonce: %w", err)
	}
	return Sealed{Purpose: purpose, ID: id, State: state, Nonce: nonce,
		Secret: r.kek.Seal(nil, nonce, secret, additionalData(purpose, id)), CreatedAt: r.now().UTC()}, nil
}

func newSecret() ([]byte, error) {
	k := make([]byte, KeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("keyring: new key: %w", err)
	}
	return k, nil
}

// Load returns the keys of purpose, opened; a purpose without keys is ErrNotFound.
func (r *Ring) Load(ctx context.Context, purpose string) (Set, error) {
	if err := checkPurpose(purpose); err != nil {
		return Set{}, err
	}
	rows, err := r.store.ClusterKeys(ctx, purpose)
	if err != nil {
		return Set{}, fmt.Errorf("keyring: load %s: %w", purpose, err)
	}
	if len(rows) == 0 {
		return Set{}, fmt.Errorf("keyring: %s: %w", purpose, ErrNotFound)
	}
	set := Set{Purpose: purpose}
	var active []Key
	for _, row := range rows {
		if len(row.Nonce) != r.kek.NonceSize() {
			return Set{}, fmt.Errorf("keyring: %s key %d: bad nonce", purpose, row.ID)
		}
		secret, err := r.kek.Open(nil, row.Nonce, row.Secret, additionalData(purpose, row.ID))
		if err != nil {
			return Set{}, fmt.Errorf("keyring: %s key %d: %w", purpose, row.ID, ErrWrongClusterKey)
		}
		k := Key{ID: row.ID, State: row.State, Secret: secret}
		if row.State == Active {
			active = append(active, k)
		} else {
			set.Keys = append(set.Keys, k)
		}
	}
	if len(active) != 1 {
		return Set{}, fmt.Errorf("keyring: %s has %d active keys, want 1", purpose, len(active))
	}
	slices.Reverse(set.Keys) // rows come by ascending id: newest accepted first
	set.Keys = append(active, set.Keys...)
	return set, nil
}

// Open loads every purpose, creating the first key of a purpose that has none: imported[purpose]
// when given (a node-local key moved into the cluster), else a random one. Every stored key is
// checked to open before anything is written, so a wrong cluster key changes nothing.
func (r *Ring) Open(ctx context.Context, imported map[string][]byte) (map[string]Set, error) {
	for p, k := range imported {
		if err := checkPurpose(p); err != nil {
			return nil, err
		}
		if len(k) != KeyLen {
			return nil, fmt.Errorf("%w: imported %s key is %d bytes, want %d", ErrInvalid, p, len(k), KeyLen)
		}
	}
	sets := make(map[string]Set, len(Purposes))
	var missing []string
	for _, p := range Purposes {
		set, err := r.Load(ctx, p)
		switch {
		case errors.Is(err, ErrNotFound):
			missing = append(missing, p)
		case err != nil:
			return nil, err
		default:
			sets[p] = set
		}
	}
	for _, p := range missing {
		secret := imported[p]
		if secret == nil {
			var err error
			if secret, err = newSecret(); err != nil {
				return nil, err
			}
		}
		row, err := r.seal(p, 1, Active, secret)
		if err != nil {
			return nil, err
		}
		if err := r.store.AddFirstClusterKey(ctx, row); err != nil {
			return nil, fmt.Errorf("keyring: create %s key: %w", p, err)
		}
		// Read back: another node may have won the race with its own first key.
		if sets[p], err = r.Load(ctx, p); err != nil {
			return nil, err
		}
		if sets[p].Active().ID == 1 && bytes.Equal(sets[p].Active().Secret, secret) {
			r.log.Info("cluster key created", "purpose", p, "key_id", 1, "imported", imported[p] != nil)
		} else if imported[p] != nil {
			return nil, fmt.Errorf("keyring: %s: another node created the first key while this one imported its own: import on one node, alone", p)
		}
	}
	return sets, nil
}

// Rotate makes a new random key the active one of purpose; the old active key stays accepted.
func (r *Ring) Rotate(ctx context.Context, purpose string) (Set, error) {
	cur, err := r.Load(ctx, purpose)
	if err != nil {
		return Set{}, err
	}
	var next uint32
	for _, k := range cur.Keys {
		next = max(next, k.ID)
	}
	next++
	secret, err := newSecret()
	if err != nil {
		return Set{}, err
	}
	row, err := r.seal(purpose, next, Active, secret)
	if err != nil {
		return Set{}, err
	}
	if err := r.store.RotateClusterKey(ctx, row); err != nil {
		return Set{}, fmt.Errorf("keyring: rotate %s: %w", purpose, err)
	}
	r.log.Info("cluster key rotated", "purpose", purpose, "key_id", next, "previous", cur.Active().ID)
	return r.Load(ctx, purpose)
}

// Retire deletes an accepted key of purpose that nothing references any more.
func (r *Ring) Retire(ctx context.Context, purpose string, id uint32) (Set, error) {
	if err := checkPurpose(purpose); err != nil {
		return Set{}, err
	}
	if err := r.store.RetireClusterKey(ctx, purpose, id); err != nil {
		return Set{}, fmt.Errorf("keyring: retire %s key %d: %w", purpose, id, err)
	}
	r.log.Info("cluster key retired", "purpose", purpose, "key_id", id)
	return r.Load(ctx, purpose)
}

// Watch reloads every purpose each interval until ctx ends and calls apply with a set that
// changed (a rotation or retirement made on another node). A failed load is logged and retried
// at the next tick; the keys in use stay as they were.
func (r *Ring) Watch(ctx context.Context, interval time.Duration, current map[string]Set, apply func(Set)) {
	seen := make(map[string]Set, len(current))
	for p, s := range current {
		seen[p] = s
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range Purposes {
			set, err := r.Load(ctx, p)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("cluster keys not reloaded", "purpose", p, "err", err)
				}
				continue
			}
			if !set.Equal(seen[p]) {
				seen[p] = set
				r.log.Info("cluster keys changed", "purpose", p, "active", set.Active().ID, "keys", len(set.Keys))
				apply(set)
			}
		}
	}
}
