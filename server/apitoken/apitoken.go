package apitoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Errors of the store and the Manager.
var (
	// ErrNotFound: no token with this id or secret.
	ErrNotFound = errors.New("apitoken: not found")
	// ErrInvalid: an empty or oversized name, or an unknown role.
	ErrInvalid = errors.New("apitoken: invalid token")
	// ErrUnauthenticated: the secret is unknown or its token revoked. It never says which.
	ErrUnauthenticated = errors.New("apitoken: unknown or revoked token")
)

// Role is what a token may do. The API maps each route to the roles allowed on it.
type Role string

// The roles. admin may do everything; the others see parts of the API.
const (
	RoleAdmin   Role = "admin"   // everything, tokens, signing keys and the audit log included
	RoleRelease Role = "release" // campaigns and updates, and read everything
	RoleCI      Role = "ci"      // upload images and read images, nothing else
	RoleSupport Role = "support" // read-only: devices, updates, campaigns, images
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleRelease, RoleCI, RoleSupport}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// Prefix starts every secret lwota makes, so a leaked one is recognisable (secret scanners, logs).
const Prefix = "lwota_"

// SecretBytes is the entropy of a secret lwota makes.
const SecretBytes = 32

// MinSecretLen is the shortest secret accepted from outside (lwota serve --admin-token).
const MinSecretLen = 32

// MaxNameLen caps a token's name.
const MaxNameLen = 64

// TouchInterval is how often, at most, a token's LastUsedAt is written: not on every request.
const TouchInterval = time.Minute

// Token is one API token as stored. The secret itself is never stored, only its hash.
type Token struct {
	ID         string
	Name       string
	Role       Role
	SecretHash string // Hash(secret)
	CreatedAt  time.Time
	CreatedBy  string // "system", or the actor that created it ("token:<id>")
	LastUsedAt time.Time
	RevokedAt  time.Time
}

// Revoked reports whether the token was revoked.
func (t *Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Actor names the token in audit entries and as an image uploader: "token:<id>".
func (t *Token) Actor() string { return "token:" + t.ID }

// Store persists tokens. SaveToken inserts a new token (an id or secret hash already stored is an
// error). TokenByHash, Token and RevokeToken of an unknown token fail with an error matching
// ErrNotFound. RevokeToken keeps the first revocation time; TouchToken sets LastUsedAt.
type Store interface {
	SaveToken(ctx context.Context, t *Token) error
	Token(ctx context.Context, id string) (*Token, error)
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	ListTokens(ctx context.Context) ([]*Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// Hash is what the store keeps of a secret: SHA-256, hex. A fast hash is right here, unlike for
// passwords: secrets lwota makes are 32 random bytes, and those given with --admin-token must be
// at least 32 characters, so no dictionary or brute force gets anywhere near them, and a slow hash
// would only cost every API request its time.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewSecret returns a fresh secret: Prefix and 32 random bytes in unpadded base64url (49 characters).
func NewSecret() string {
	var b [SecretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Manager creates, lists, revokes and checks tokens over a Store.
type Manager struct {
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	touched map[string]time.Time // token id -> last LastUsedAt this process wrote
}

// New returns a Manager over store. A nil logger discards.
func New(store Store, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, log: logger, now: time.Now, touched: map[string]time.Time{}}
}

// SetClock replaces time.Now, for tests.
func (m *Manager) SetClock(now func() time.Time) { m.now = now }

func checkNew(name string, role Role) error {
	switch {
	case strings.TrimSpace(name) == "" || len(name) > MaxNameLen || !utf8.ValidString(name):
		return fmt.Errorf("%w: a name is 1 to %d bytes of UTF-8", ErrInvalid, MaxNameLen)
	case !role.Valid():
		return fmt.Errorf("%w: role %q is not one of admin, release, ci, support", ErrInvalid, role)
	}
	return nil
}

// Create makes a token and returns it with its secret, which exists nowhere else afterwards.
// createdBy is the actor that asked ("token:<id>", "system").
func (m *Manager) Create(ctx context.Context, name string, role Role, createdBy string) (*Token, string, error) {
	if err := checkNew(name, role); err != nil {
		return nil, "", err
	}
	secret := NewSecret()
	t := &Token{ID: newID(), Name: name, Role: role, SecretHash: Hash(secret), CreatedAt: m.now().UTC(), CreatedBy: createdBy}
	if err := m.store.SaveToken(ctx, t); err != nil {
		return nil, "", fmt.Errorf("apitoken: create %s: %w", name, err)
	}
	return t, secret, nil
}

// List returns every token, revoked ones included, without secrets (there are none to return).
func (m *Manager) List(ctx context.Context) ([]*Token, error) {
	return m.store.ListTokens(ctx)
}

// Revoke revokes token id: from now on its secret authenticates nobody. Revoking twice keeps the
// first time. An unknown id is ErrNotFound.
func (m *Manager) Revoke(ctx context.Context, id string) (*Token, error) {
	if err := m.store.RevokeToken(ctx, id, m.now().UTC()); err != nil {
		return nil, err
	}
	return m.store.Token(ctx, id)
}

// Authenticate returns the live token whose secret this is, or ErrUnauthenticated. The lookup is by
// hash and the stored hash is compared in constant time. LastUsedAt is written at most once per
// TouchInterval per token; a failing write is logged, not fatal.
func (m *Manager) Authenticate(ctx context.Context, secret string) (*Token, error) {
	if secret == "" || len(secret) > 512 {
		return nil, ErrUnauthenticated
	}
	h := Hash(secret)
	t, err := m.store.TokenByHash(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("apitoken: authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(t.SecretHash), []byte(h)) != 1 || t.Revoked() {
		return nil, ErrUnauthenticated
	}
	now := m.now().UTC()
	if m.claimTouch(t, now) {
		if err := m.store.TouchToken(ctx, t.ID, now); err != nil {
			m.log.Warn("api token: last use not recorded", "token", t.ID, "err", err)
		} else {
			t.LastUsedAt = now
		}
	}
	return t, nil
}

// claimTouch decides whether this request writes LastUsedAt: when neither the row nor this
// process wrote it within TouchInterval. Concurrent requests of one token claim it once.
func (m *Manager) claimTouch(t *Token, now time.Time) bool {
	if now.Sub(t.LastUsedAt) < TouchInterval {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.touched[t.ID]; ok && now.Sub(last) < TouchInterval {
		return false
	}
	m.touched[t.ID] = now
	return true
}

// Bootstrap makes sure an administrator can reach the API at start-up. It returns the token it
// created, nil when it created none, and a secret only when the caller has to show it:
//
//   - with adminSecret (lwota serve --admin-token) the token with that secret is created as
//     "admin (--admin-token)" unless it exists, so restarts with the same secret change nothing;
//     a revoked one stays revoked (and is logged). No secret is returned: the caller knows it;
//   - without it, when the store holds no token at all, an admin token "admin (first start)" is
//     created and its secret returned, for the caller to show once.
func (m *Manager) Bootstrap(ctx context.Context, adminSecret string) (t *Token, secret string, err error) {
	if adminSecret != "" {
		if len(adminSecret) < MinSecretLen || len(adminSecret) > 512 {
			return nil, "", fmt.Errorf("%w: an admin token must be %d to 512 characters", ErrInvalid, MinSecretLen)
		}
		h := Hash(adminSecret)
		t, err := m.store.TokenByHash(ctx, h)
		switch {
		case err == nil:
			if t.Revoked() {
				m.log.Warn("the --admin-token was revoked; it stays revoked and authenticates nobody", "token", t.ID)
			}
			return nil, "", nil
		case !errors.Is(err, ErrNotFound):
			return nil, "", fmt.Errorf("apitoken: bootstrap: %w", err)
		}
		t = &Token{ID: newID(), Name: "admin (--admin-token)", Role: RoleAdmin, SecretHash: h, CreatedAt: m.now().UTC(), CreatedBy: "system"}
		if err := m.store.SaveToken(ctx, t); err != nil {
			return nil, "", fmt.Errorf("apitoken: bootstrap: %w", err)
		}
		return t, "", nil
	}
	all, err := m.store.ListTokens(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("apitoken: bootstrap: %w", err)
	}
	if len(all) > 0 {
		return nil, "", nil
	}
	return m.Create(ctx, "admin (first start)", RoleAdmin, "system")
}
