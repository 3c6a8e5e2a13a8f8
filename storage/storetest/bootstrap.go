package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/registration"
)

// BootstrapStore is what the Bootstrap Server's store is tested with: its own interface, the
// labels its label configurations match, and the DM credentials a finished session writes.
type BootstrapStore interface {
	bootstrap.Store
	registration.LabelStore
	credentials.Store
}

// RunBootstrap is the contract of bootstrap.Store.
func RunBootstrap(t *testing.T, open func(t *testing.T) BootstrapStore) {
	parallel(t, "ConfigRoundTrip", open, testBootstrapConfigRoundTrip)
	parallel(t, "Resolve", open, testBootstrapResolve)
	parallel(t, "Sessions", open, testBootstrapSessions)
	parallel(t, "FinishWithCredential", open, testBootstrapFinishCredential)
}

func bootstrapConfig(scope bootstrap.Scope, name, uri string) *bootstrap.Config {
	return &bootstrap.Config{Scope: scope, Name: name, ServerURI: uri, PSK: bootstrap.PSKGenerate, Lifetime: 300, Binding: "U", ShortServerID: 1, UpdatedAt: at(0)}
}

func testBootstrapConfigRoundTrip(t *testing.T, s BootstrapStore) {
	ctx := context.Background()
	c := bootstrapConfig(bootstrap.ScopeEndpoint, "dev-1", "coaps://a:5684")
	c.DefaultPmax, c.ReadBack = 60, true
	if err := s.SaveBootstrapConfig(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.BootstrapConfig(ctx, bootstrap.ScopeEndpoint, "dev-1")
	if err != nil || got.ServerURI != c.ServerURI || got.DefaultPmax != 60 || !got.ReadBack || got.PSK != bootstrap.PSKGenerate {
		t.Fatalf("got %+v, %v", got, err)
	}
	c.ServerURI = "coaps://b:5684"
	if err := s.SaveBootstrapConfig(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBootstrapConfig(ctx, bootstrapConfig(bootstrap.ScopePrefix, "dev-", "coaps://c:5684")); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListBootstrapConfigs(ctx)
	if err != nil || len(all) != 2 || all[0].Scope != bootstrap.ScopeEndpoint || all[0].ServerURI != "coaps://b:5684" {
		t.Fatalf("list %+v, %v", all, err)
	}
	if err := s.DeleteBootstrapConfig(ctx, bootstrap.ScopeEndpoint, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBootstrapConfig(ctx, bootstrap.ScopeEndpoint, "dev-1"); !errors.Is(err, bootstrap.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.BootstrapConfig(ctx, bootstrap.ScopeEndpoint, "dev-1"); !errors.Is(err, bootstrap.ErrNotFound) {
		t.Fatalf("deleted config: %v", err)
	}
}

func testBootstrapResolve(t *testing.T, s BootstrapStore) {
	ctx := context.Background()
	for _, c := range []*bootstrap.Config{
		bootstrapConfig(bootstrap.ScopePrefix, "b", "coaps://short:1"),
		bootstrapConfig(bootstrap.ScopePrefix, "batch-7-", "coaps://long:1"),
		bootstrapConfig(bootstrap.ScopeLabel, "site=north", "coaps://label:1"),
		bootstrapConfig(bootstrap.ScopeEndpoint, "batch-7-001", "coaps://own:1"),
	} {
		if err := s.SaveBootstrapConfig(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetLabels(ctx, "batch-7-002", map[string]string{"site": "north"}); err != nil {
		t.Fatal(err)
	}
	for ep, want := range map[string]string{
		"batch-7-001": "coaps://own:1",   // its own
		"batch-7-002": "coaps://label:1", // a label before a prefix
		"batch-7-003": "coaps://long:1",  // the longest prefix
		"b-1":         "coaps://short:1",
	} {
		c, err := s.ResolveBootstrapConfig(ctx, ep)
		if err != nil || c.ServerURI != want {
			t.Fatalf("%s: %+v, %v; want %s", ep, c, err, want)
		}
	}
	if _, err := s.ResolveBootstrapConfig(ctx, "other"); !errors.Is(err, bootstrap.ErrNotFound) {
		t.Fatalf("unmatched endpoint: %v", err)
	}
	// A prefix is matched literally: SQL wildcards in it match nothing.
	if err := s.SaveBootstrapConfig(ctx, bootstrapConfig(bootstrap.ScopePrefix, "x%", "coaps://wild:1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveBootstrapConfig(ctx, "xyz"); !errors.Is(err, bootstrap.ErrNotFound) {
		t.Fatalf("a %% prefix matched: %v", err)
	}
}

func testBootstrapSessions(t *testing.T, s BootstrapStore) {
	ctx := context.Background()
	for i, id := range []string{"s1", "s2", "s3"} {
		sess := &bootstrap.Session{ID: id, Endpoint: "dev-1", StartedAt: at(time.Duration(i) * time.Second), Outcome: bootstrap.OutcomeRunning,
			Steps: []bootstrap.Step{{At: at(0), Op: "request", Path: "/bs"}}}
		if err := s.SaveBootstrapSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	done := &bootstrap.Session{ID: "s2", Endpoint: "dev-1", StartedAt: at(1e9), Outcome: bootstrap.OutcomeFailure, Reason: "Finish 4.06"}
	if err := s.FinishBootstrapSession(ctx, done, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.BootstrapSessions(ctx, "dev-1", 0)
	if err != nil || len(got) != 3 || got[0].ID != "s3" || got[1].ID != "s2" || got[1].Reason != "Finish 4.06" || got[2].Steps[0].Op != "request" {
		t.Fatalf("sessions %+v, %v", got, err)
	}
	if got, err := s.BootstrapSessions(ctx, "dev-1", 1); err != nil || len(got) != 1 || got[0].ID != "s3" {
		t.Fatalf("limit 1: %+v, %v", got, err)
	}
	if got, err := s.BootstrapSessions(ctx, "dev-2", 0); err != nil || len(got) != 0 {
		t.Fatalf("other endpoint: %+v, %v", got, err)
	}
}

func testBootstrapFinishCredential(t *testing.T, s BootstrapStore) {
	ctx := context.Background()
	sess := &bootstrap.Session{ID: "f1", Endpoint: "dev-1", StartedAt: at(0), Outcome: bootstrap.OutcomeRunning}
	if err := s.SaveBootstrapSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	ok := *sess
	ok.Outcome = bootstrap.OutcomeSuccess
	if err := s.FinishBootstrapSession(ctx, &ok, sealed("dev-1", "id-1", 1)); err != nil {
		t.Fatal(err)
	}
	if c, err := s.CredentialByEndpoint(ctx, "dev-1"); err != nil || c.Identity != "id-1" {
		t.Fatalf("credential %+v, %v", c, err)
	}
	// An identity another endpoint holds: neither the session nor the credential is written.
	if err := s.SaveCredential(ctx, sealed("dev-2", "id-2", 3)); err != nil {
		t.Fatal(err)
	}
	sess2 := &bootstrap.Session{ID: "f2", Endpoint: "dev-1", StartedAt: at(1e9), Outcome: bootstrap.OutcomeRunning}
	if err := s.SaveBootstrapSession(ctx, sess2); err != nil {
		t.Fatal(err)
	}
	bad := *sess2
	bad.Outcome = bootstrap.OutcomeSuccess
	if err := s.FinishBootstrapSession(ctx, &bad, sealed("dev-1", "id-2", 5)); !errors.Is(err, credentials.ErrIdentityTaken) {
		t.Fatalf("finish with a taken identity: %v", err)
	}
	if c, err := s.CredentialByEndpoint(ctx, "dev-1"); err != nil || c.Identity != "id-1" {
		t.Fatalf("credential after the refused finish %+v, %v", c, err)
	}
	got, err := s.BootstrapSessions(ctx, "dev-1", 1)
	if err != nil || got[0].ID != "f2" || got[0].Outcome != bootstrap.OutcomeRunning {
		t.Fatalf("session after the refused finish %+v, %v", got, err)
	}
}
