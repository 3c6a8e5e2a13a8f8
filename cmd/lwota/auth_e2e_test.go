package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/apitoken"
)

// httpStatus does one request with an optional bearer token and returns the status.
func httpStatus(t *testing.T, method, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokensEndToEnd: the token CLI against a real server, roles enforced, revocation at once,
// the audit log, and /metrics open or guarded.
func TestTokensEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ts := startService(t, dir, "", "--metrics-token-required")
	if code := httpStatus(t, "GET", ts.base+"/api/v1/devices", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code := httpStatus(t, "GET", ts.base+"/healthz", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if code := httpStatus(t, "GET", ts.base+"/metrics", ""); code != 401 {
		t.Fatalf("metrics without token under --metrics-token-required: %d", code)
	}

	out, stderr, err := cli(t, "token", "create", "--server", ts.base, "--name", "pipeline", "--role", "ci")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr)
	}
	var ci struct{ ID, Token, Role string }
	if err := json.Unmarshal([]byte(out), &ci); err != nil || !strings.HasPrefix(ci.Token, "lwota_") || ci.Role != "ci" {
		t.Fatalf("token create printed %s (%v)", out, err)
	}
	if code := httpStatus(t, "GET", ts.base+"/metrics", ci.Token); code != 200 {
		t.Fatalf("metrics with a token: %d", code)
	}
	if code := httpStatus(t, "GET", ts.base+"/api/v1/images", ci.Token); code != 200 {
		t.Fatalf("ci lists images: %d", code)
	}
	if code := httpStatus(t, "GET", ts.base+"/api/v1/devices", ci.Token); code != 403 {
		t.Fatalf("ci lists devices: %d, want 403", code)
	}
	if _, _, err := cli(t, "token", "list", "--server", ts.base, "--token", ci.Token); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("token list as ci: %v, want a 403", err)
	}
	out, stderr, err = cli(t, "token", "list", "--server", ts.base)
	if err != nil || strings.Contains(out, ci.Token) || !strings.Contains(out, `"pipeline"`) || !strings.Contains(out, "admin (--admin-token)") {
		t.Fatalf("token list: %v %s\n%s", err, stderr, out)
	}
	if _, stderr, err := cli(t, "token", "revoke", "--server", ts.base, ci.ID); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, stderr)
	}
	if code := httpStatus(t, "GET", ts.base+"/api/v1/images", ci.Token); code != 401 {
		t.Fatalf("revoked token: %d, want 401", code)
	}

	var page struct {
		Entries []struct{ Action, Actor, Target string }
	}
	if code := ts.apiCall(t, "GET", "/api/v1/audit", nil, &page); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var actions []string
	for _, e := range page.Entries {
		actions = append(actions, e.Action)
	}
	got := strings.Join(actions, ",")
	if !strings.HasPrefix(got, "DELETE /api/v1/tokens/:id,POST /api/v1/tokens") || !strings.HasSuffix(got, "token.create") {
		t.Fatalf("audit actions %s", got)
	}

	// A restart with the same --admin-token creates nothing new.
	ts.shutdown(t)
	ts = startService(t, dir, "")
	var list struct{ Tokens []struct{ Name string } }
	if code := ts.apiCall(t, "GET", "/api/v1/tokens", nil, &list); code != 200 || len(list.Tokens) != 2 {
		t.Fatalf("after restart: %d, %d tokens, want 2", code, len(list.Tokens))
	}
	if code := httpStatus(t, "GET", ts.base+"/metrics", ""); code != 200 {
		t.Fatalf("metrics are open by default: %d", code)
	}
}

// TestFirstStartPrintsAdminToken: without --admin-token, an empty database gets an admin token,
// logged once; the next start logs none.
func TestFirstStartPrintsAdminToken(t *testing.T) {
	dir := t.TempDir()
	// The services are built, not run: Bootstrap happens in newService.
	start := func(check func(*service)) string {
		cfg, err := parseServeFlags([]string{"--coap-addr", "127.0.0.1:0", "--coaps-addr", "", "--http-addr", "127.0.0.1:0", "--data-dir", dir}, io.Discard, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		svc, err := newService(context.Background(), cfg, slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if check != nil {
			check(svc)
		}
		svc.store.Close()
		return logs.String()
	}
	first := start(nil)
	m := regexp.MustCompile(`FIRST START.*admin_token=(lwota_[A-Za-z0-9_-]{43})`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first start logged no admin token:\n%s", first)
	}
	again := start(func(svc *service) {
		tok, err := apitoken.New(svc.store, nil).Authenticate(context.Background(), m[1])
		if err != nil || tok.Role != apitoken.RoleAdmin {
			t.Errorf("the printed token: %+v, %v", tok, err)
		}
	})
	if strings.Contains(again, "admin_token") || strings.Contains(again, m[1]) {
		t.Fatalf("second start shows a token again:\n%s", again)
	}
}
