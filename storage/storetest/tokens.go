package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
)

// RunTokens is the contract of apitoken.Store.
func RunTokens(t *testing.T, open func(t *testing.T) apitoken.Store) {
	parallel(t, "RoundTrip", open, testTokenRoundTrip)
	parallel(t, "Unique", open, testTokenUnique)
	parallel(t, "Revoke", open, testTokenRevoke)
	parallel(t, "Touch", open, testTokenTouch)
	parallel(t, "List", open, testTokenList)
}

func token(id, hash string, d time.Duration) *apitoken.Token {
	return &apitoken.Token{ID: id, Name: "name " + id, Role: apitoken.RoleRelease, SecretHash: hash,
		CreatedAt: at(d), CreatedBy: "system"}
}

func checkToken(t *testing.T, got, want *apitoken.Token) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Role != want.Role || got.SecretHash != want.SecretHash ||
		got.CreatedBy != want.CreatedBy || !utc(got.CreatedAt).Equal(utc(want.CreatedAt)) ||
		!utc(got.LastUsedAt).Equal(utc(want.LastUsedAt)) || !utc(got.RevokedAt).Equal(utc(want.RevokedAt)) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func testTokenRoundTrip(t *testing.T, s apitoken.Store) {
	ctx := context.Background()
	if _, err := s.Token(ctx, "t1"); !errors.Is(err, apitoken.ErrNotFound) {
		t.Fatalf("Token(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.TokenByHash(ctx, "h1"); !errors.Is(err, apitoken.ErrNotFound) {
		t.Fatalf("TokenByHash(missing) = %v, want ErrNotFound", err)
	}
	want := token("t1", "h1", 0)
	if err := s.SaveToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Token(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, got, want)
	got, err = s.TokenByHash(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, got, want)
	if got.Revoked() {
		t.Fatal("a new token reads as revoked")
	}
}

func testTokenUnique(t *testing.T, s apitoken.Store) {
	ctx := context.Background()
	if err := s.SaveToken(ctx, token("t1", "h1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToken(ctx, token("t1", "h2", 0)); err == nil {
		t.Fatal("a second token with the same id was saved")
	}
	if err := s.SaveToken(ctx, token("t2", "h1", 0)); err == nil {
		t.Fatal("a second token with the same secret hash was saved")
	}
	got, err := s.TokenByHash(ctx, "h1")
	if err != nil || got.ID != "t1" {
		t.Fatalf("h1 -> %v, %v; want t1", got, err)
	}
}

func testTokenRevoke(t *testing.T, s apitoken.Store) {
	ctx := context.Background()
	if err := s.RevokeToken(ctx, "t1", at(time.Hour)); !errors.Is(err, apitoken.ErrNotFound) {
		t.Fatalf("revoke missing = %v, want ErrNotFound", err)
	}
	want := token("t1", "h1", 0)
	if err := s.SaveToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A second revocation keeps the first time.
	if err := s.RevokeToken(ctx, "t1", at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	want.RevokedAt = at(time.Hour)
	got, err := s.TokenByHash(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, got, want)
	if !got.Revoked() {
		t.Fatal("revoked token reads as live")
	}
}

func testTokenTouch(t *testing.T, s apitoken.Store) {
	ctx := context.Background()
	if err := s.TouchToken(ctx, "t1", at(time.Minute)); !errors.Is(err, apitoken.ErrNotFound) {
		t.Fatalf("touch missing = %v, want ErrNotFound", err)
	}
	want := token("t1", "h1", 0)
	if err := s.SaveToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Minute, 3 * time.Minute} {
		if err := s.TouchToken(ctx, "t1", at(d)); err != nil {
			t.Fatal(err)
		}
	}
	want.LastUsedAt = at(3 * time.Minute)
	got, err := s.Token(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	checkToken(t, got, want)
}

func testTokenList(t *testing.T, s apitoken.Store) {
	ctx := context.Background()
	if l, err := s.ListTokens(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty store lists %v, %v", l, err)
	}
	for i, id := range []string{"c", "a", "b"} {
		if err := s.SaveToken(ctx, token(id, "h-"+id, time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeToken(ctx, "a", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	l, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range l {
		ids = append(ids, tk.ID)
	}
	if len(ids) != 3 || ids[0] != "c" || ids[1] != "a" || ids[2] != "b" {
		t.Fatalf("ListTokens order %v, want oldest first [c a b] with the revoked one", ids)
	}
}
