package apitoken_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
)

// memStore is the smallest apitoken.Store; the real one is storage/sqlstore's.
type memStore struct {
	mu sync.Mutex
	m  map[string]apitoken.Token
}

func newMem() *memStore { return &memStore{m: map[string]apitoken.Token{}} }

func (s *memStore) SaveToken(_ context.Context, t *apitoken.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.m {
		if x.ID == t.ID || x.SecretHash == t.SecretHash {
			return errors.New("duplicate")
		}
	}
	s.m[t.ID] = *t
	return nil
}
func (s *memStore) Token(_ context.Context, id string) (*apitoken.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.m[id]; ok {
		return &t, nil
	}
	return nil, apitoken.ErrNotFound
}
func (s *memStore) TokenByHash(_ context.Context, h string) (*apitoken.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.m {
		if t.SecretHash == h {
			return &t, nil
		}
	}
	return nil, apitoken.ErrNotFound
}
func (s *memStore) ListTokens(context.Context) ([]*apitoken.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*apitoken.Token
	for _, t := range s.m {
		out = append(out, &t)
	}
	return out, nil
}
func (s *memStore) RevokeToken(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[id]
	if !ok {
		return apitoken.ErrNotFound
	}
	if t.RevokedAt.IsZero() {
		t.RevokedAt = at
	}
	s.m[id] = t
	return nil
}
func (s *memStore) TouchToken(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.m[id]
	t.LastUsedAt = at
	s.m[id] = t
	return nil
}

func TestCreateAuthenticateRevoke(t *testing.T) {
	ctx := context.Background()
	store := newMem()
	m := apitoken.New(store, nil)
	tok, secret, err := m.Create(ctx, "ci", apitoken.RoleCI, "system")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, apitoken.Prefix) || len(secret) != 49 || strings.ContainsAny(secret, "+/=") {
		t.Fatalf("secret %q", secret)
	}
	stored, _ := store.Token(ctx, tok.ID)
	if stored.SecretHash != apitoken.Hash(secret) || strings.Contains(stored.SecretHash, secret) {
		t.Fatalf("stored hash %q", stored.SecretHash)
	}
	got, err := m.Authenticate(ctx, secret)
	if err != nil || got.ID != tok.ID || got.Role != apitoken.RoleCI {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	for _, bad := range []string{"", secret + "x", "lwota_" + strings.Repeat("A", 43), strings.Repeat("x", 600)} {
		if _, err := m.Authenticate(ctx, bad); !errors.Is(err, apitoken.ErrUnauthenticated) {
			t.Fatalf("Authenticate(%.20q) = %v", bad, err)
		}
	}
	if _, err := m.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Authenticate(ctx, secret); !errors.Is(err, apitoken.ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	if _, err := m.Revoke(ctx, "nope"); !errors.Is(err, apitoken.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	m := apitoken.New(newMem(), nil)
	for _, tc := range []struct {
		name string
		role apitoken.Role
	}{{"", apitoken.RoleCI}, {"  ", apitoken.RoleCI}, {strings.Repeat("n", 65), apitoken.RoleCI}, {"x", "root"}, {"x", ""}} {
		if _, _, err := m.Create(context.Background(), tc.name, tc.role, "system"); !errors.Is(err, apitoken.ErrInvalid) {
			t.Errorf("Create(%q, %q) = %v, want ErrInvalid", tc.name, tc.role, err)
		}
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	t.Run("first start prints once", func(t *testing.T) {
		m := apitoken.New(newMem(), nil)
		tok, secret, err := m.Bootstrap(ctx, "")
		if err != nil || tok == nil || tok.Role != apitoken.RoleAdmin || secret == "" {
			t.Fatalf("first: %+v %q %v", tok, secret, err)
		}
		if tok, secret, err := m.Bootstrap(ctx, ""); tok != nil || secret != "" || err != nil {
			t.Fatalf("second: %+v %q %v", tok, secret, err)
		}
	})
	t.Run("admin token is idempotent", func(t *testing.T) {
		store := newMem()
		m := apitoken.New(store, nil)
		const given = "a-long-enough-admin-secret-0123456789"
		tok, secret, err := m.Bootstrap(ctx, given)
		if err != nil || tok == nil || secret != "" {
			t.Fatalf("first: %+v %q %v", tok, secret, err)
		}
		if tok, _, err := m.Bootstrap(ctx, given); tok != nil || err != nil {
			t.Fatalf("again: %+v %v", tok, err)
		}
		if l, _ := store.ListTokens(ctx); len(l) != 1 {
			t.Fatalf("%d tokens", len(l))
		}
		if got, err := m.Authenticate(ctx, given); err != nil || got.Role != apitoken.RoleAdmin {
			t.Fatalf("Authenticate(given) = %+v, %v", got, err)
		}
		if _, _, err := m.Bootstrap(ctx, "short"); !errors.Is(err, apitoken.ErrInvalid) {
			t.Fatalf("short admin token: %v", err)
		}
	})
}

func TestLastUsedOncePerMinute(t *testing.T) {
	ctx := context.Background()
	store := newMem()
	m := apitoken.New(store, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.SetClock(func() time.Time { return now })
	tok, secret, _ := m.Create(ctx, "x", apitoken.RoleSupport, "system")
	_, _ = m.Authenticate(ctx, secret)
	first, _ := store.Token(ctx, tok.ID)
	now = now.Add(30 * time.Second)
	_, _ = m.Authenticate(ctx, secret)
	if got, _ := store.Token(ctx, tok.ID); !got.LastUsedAt.Equal(first.LastUsedAt) || first.LastUsedAt.IsZero() {
		t.Fatalf("last used %v then %v", first.LastUsedAt, got.LastUsedAt)
	}
	now = now.Add(31 * time.Second)
	_, _ = m.Authenticate(ctx, secret)
	if got, _ := store.Token(ctx, tok.ID); !got.LastUsedAt.Equal(now) {
		t.Fatalf("after a minute: %v, want %v", got.LastUsedAt, now)
	}
}
