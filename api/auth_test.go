package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
)

// memTokens is an in-memory apitoken.Store for the API tests (the real one is in storage/sqlstore).
type memTokens struct {
	mu     sync.Mutex
	byID   map[string]*apitoken.Token
	touchs int
}

func (m *memTokens) SaveToken(_ context.Context, t *apitoken.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.byID {
		if x.ID == t.ID || x.SecretHash == t.SecretHash {
			return fmt.Errorf("duplicate token")
		}
	}
	c := *t
	m.byID[t.ID] = &c
	return nil
}

func (m *memTokens) Token(_ context.Context, id string) (*apitoken.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.byID[id]; ok {
		c := *t
		return &c, nil
	}
	return nil, apitoken.ErrNotFound
}

func (m *memTokens) TokenByHash(_ context.Context, h string) (*apitoken.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.byID {
		if t.SecretHash == h {
			c := *t
			return &c, nil
		}
	}
	return nil, apitoken.ErrNotFound
}

func (m *memTokens) ListTokens(context.Context) ([]*apitoken.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*apitoken.Token
	for _, t := range m.byID {
		c := *t
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memTokens) RevokeToken(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byID[id]
	if !ok {
		return apitoken.ErrNotFound
	}
	if t.RevokedAt.IsZero() {
		t.RevokedAt = at
	}
	return nil
}

func (m *memTokens) TouchToken(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byID[id]
	if !ok {
		return apitoken.ErrNotFound
	}
	t.LastUsedAt = at
	m.touchs++
	return nil
}

// memAudit is an in-memory audit.Store.
type memAudit struct {
	mu      sync.Mutex
	entries []*audit.Entry
}

func (m *memAudit) AppendAudit(_ context.Context, e *audit.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *e
	c.Seq = int64(len(m.entries) + 1)
	m.entries = append(m.entries, &c)
	return nil
}

func (m *memAudit) ListAudit(_ context.Context, f audit.Filter) ([]*audit.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*audit.Entry
	for i := len(m.entries) - 1; i >= 0; i-- {
		e := m.entries[i]
		if (f.Actor != "" && e.Actor != f.Actor) || (f.Action != "" && e.Action != f.Action) ||
			(!f.Since.IsZero() && e.At.Before(f.Since)) || (!f.Until.IsZero() && !e.At.Before(f.Until)) ||
			(f.Before > 0 && e.Seq >= f.Before) {
			continue
		}
		c := *e
		out = append(out, &c)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// testAuth holds a token of every role.
type testAuth struct {
	store   *memTokens
	tokens  *apitoken.Manager
	audits  *memAudit
	log     *audit.Log
	secrets map[apitoken.Role]string
	ids     map[apitoken.Role]string
}

func newTestAuth(t *testing.T) *testAuth {
	t.Helper()
	a := &testAuth{store: &memTokens{byID: map[string]*apitoken.Token{}}, audits: &memAudit{},
		secrets: map[apitoken.Role]string{}, ids: map[apitoken.Role]string{}}
	a.tokens = apitoken.New(a.store, nil)
	a.log = audit.New(a.audits)
	for _, r := range apitoken.Roles {
		tok, secret, err := a.tokens.Create(context.Background(), string(r), r, "system")
		if err != nil {
			t.Fatal(err)
		}
		a.secrets[r], a.ids[r] = secret, tok.ID
	}
	return a
}

// asAdmin sends the admin token with requests that carry no Authorization header; an empty
// Authorization header is removed, so a test can send none at all.
func (a *testAuth) asAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, present := r.Header["Authorization"]
		switch {
		case !present:
			r.Header.Set("Authorization", "Bearer "+a.secrets[apitoken.RoleAdmin])
		case len(v) == 1 && v[0] == "":
			r.Header.Del("Authorization")
		}
		h.ServeHTTP(w, r)
	})
}

func bearer(secret string) string { return "Bearer " + secret }

// routeSample turns an echo route pattern into a concrete URL.
func routeSample(path string) string {
	r := strings.NewReplacer(":endpoint", "dev-a", ":id", "x1")
	p := r.Replace(path)
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "*") + "3/0/1"
	}
	return p
}

// TestRouteRolesCoverRoutes: every route echo serves has a row in RouteRoles. A route added
// without one is closed to everyone, and this test names it.
func TestRouteRolesCoverRoutes(t *testing.T) {
	env := newTestEnv(t, Config{})
	n := 0
	for _, r := range env.api.echo.Routes() {
		n++
		if _, ok := rolesFor(r.Method, r.Path); !ok {
			t.Errorf("%s %s is not in RouteRoles: decide which roles may call it", r.Method, r.Path)
		}
	}
	if n < 20 {
		t.Fatalf("only %d routes", n)
	}
	if RolePublic.Valid() {
		t.Errorf("a token could have the role %q", RolePublic)
	}
	for _, row := range RouteRoles {
		if slices.Contains(row.Roles, RolePublic) {
			if len(row.Roles) != 1 {
				t.Errorf("%s %s: public and roles %v: a public route needs no role", row.Method, row.Path, row.Roles)
			}
			continue
		}
		if len(row.Roles) == 0 || !slices.Contains(row.Roles, apitoken.RoleAdmin) {
			t.Errorf("%s %s: admin may do everything", row.Method, row.Path)
		}
	}
}

// TestRouteRoles calls every route echo serves without a token, with a bad one, with a revoked one
// and with a token of each role: 401, 401, 401, then 403 exactly where RouteRoles says so and
// anything but 401 and 403 elsewhere.
func TestRouteRoles(t *testing.T) {
	env := newTestEnv(t, Config{})
	revoked, secret, err := env.auth.tokens.Create(context.Background(), "gone", apitoken.RoleAdmin, "system")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.auth.tokens.Revoke(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range env.api.echo.Routes() {
		if r.Method == http.MethodGet && r.Path == Prefix+"/events" {
			continue // a stream: checked by TestEventsNeedToken
		}
		url := routeSample(r.Path)
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			allowed, _ := rolesFor(r.Method, r.Path)
			open := slices.Contains(allowed, RolePublic)
			for _, bad := range []struct{ name, header string }{
				{"none", ""}, {"bad", bearer("lwota_nope")}, {"revoked", bearer(secret)}, {"basic", "Basic YWRtaW46YWRtaW4="},
			} {
				res := env.do(t, r.Method, url, "", "Authorization", bad.header)
				if open {
					if res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
						t.Errorf("public route, %s token: %d %s, want access", bad.name, res.status, res.body)
					}
					continue
				}
				wantError(t, res, http.StatusUnauthorized, codeUnauthorized)
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("%s token: WWW-Authenticate %q", bad.name, res.header.Get("WWW-Authenticate"))
				}
			}
			for _, role := range apitoken.Roles {
				res := env.do(t, r.Method, url, "", "Authorization", bearer(env.auth.secrets[role]))
				if open || slices.Contains(allowed, role) {
					if res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
						t.Errorf("role %s: %d %s, want access", role, res.status, res.body)
					}
				} else {
					wantError(t, res, http.StatusForbidden, codeForbidden)
				}
			}
		})
	}
}

func TestEventsNeedToken(t *testing.T) {
	env := newTestEnv(t, Config{})
	wantError(t, env.do(t, "GET", "/api/v1/events", "", "Authorization", ""), 401, codeUnauthorized)
	wantError(t, env.do(t, "GET", "/api/v1/events", "", "Authorization", bearer(env.auth.secrets[apitoken.RoleCI])), 403, codeForbidden)
}

// TestUnknownRoutesNeedToken: a 404 or 405 is only told to a caller with a token.
func TestUnknownRoutesNeedToken(t *testing.T) {
	env := newTestEnv(t, Config{})
	wantError(t, env.do(t, "GET", "/api/v1/nothing", "", "Authorization", ""), 401, codeUnauthorized)
	wantError(t, env.do(t, "GET", "/api/v1/nothing", ""), 404, codeNotFound)
	wantError(t, env.do(t, "PUT", "/api/v1/devices", "", "Authorization", ""), 401, codeUnauthorized)
	wantError(t, env.do(t, "PUT", "/api/v1/devices", "", "Authorization", bearer(env.auth.secrets[apitoken.RoleSupport])), 405, codeMethodNotAllowed)
}

// TestNoAuthConfigured: an API without WithAuth refuses everything.
func TestNoAuthConfigured(t *testing.T) {
	a := New(Config{}, &fakeDevices{}, &fakeOperator{}, &fakeObservations{}, testTypes, newFakeSubscriber(), nil)
	req := httptest.NewRequest("GET", "/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer whatever")
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestTokensAPI(t *testing.T) {
	env := newTestEnv(t, Config{})
	r := env.do(t, "POST", "/api/v1/tokens", `{"name":"ci bot","role":"ci"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created tokenJSON
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Token, apitoken.Prefix) || len(created.Token) != len(apitoken.Prefix)+43 ||
		created.Role != "ci" || created.Name != "ci bot" || created.CreatedBy != "token:"+env.auth.ids[apitoken.RoleAdmin] {
		t.Fatalf("created %+v", created)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	// The new token works, with its role's rights only.
	if r := env.do(t, "GET", "/api/v1/images", "", "Authorization", bearer(created.Token)); r.status == 401 || r.status == 403 {
		t.Fatalf("new ci token on images: %d", r.status)
	}
	wantError(t, env.do(t, "GET", "/api/v1/devices", "", "Authorization", bearer(created.Token)), 403, codeForbidden)

	// The list never shows a secret.
	r = env.do(t, "GET", "/api/v1/tokens", "")
	if r.status != 200 || strings.Contains(string(r.body), created.Token) || strings.Contains(string(r.body), `"token"`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct{ Tokens []tokenJSON }
	_ = json.Unmarshal(r.body, &list)
	if len(list.Tokens) != 5 {
		t.Fatalf("listed %d tokens, want 5", len(list.Tokens))
	}

	// Revoke: 200 with revoked_at; the secret stops working at once.
	r = env.do(t, "DELETE", "/api/v1/tokens/"+created.ID, "")
	var rev tokenJSON
	if r.status != 200 || json.Unmarshal(r.body, &rev) != nil || rev.RevokedAt.IsZero() {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	wantError(t, env.do(t, "GET", "/api/v1/images", "", "Authorization", bearer(created.Token)), 401, codeUnauthorized)
	wantError(t, env.do(t, "DELETE", "/api/v1/tokens/nope", ""), 404, codeNotFound)

	for _, body := range []string{`{"name":"x","role":"root"}`, `{"name":"","role":"ci"}`, `{"role":"ci"}`,
		fmt.Sprintf(`{"name":%q,"role":"ci"}`, strings.Repeat("n", 65))} {
		wantError(t, env.do(t, "POST", "/api/v1/tokens", body), 400, codeInvalidToken)
	}
	wantError(t, env.do(t, "POST", "/api/v1/tokens", `{"name":"x","role":"ci","extra":1}`), 400, codeInvalidJSON)
}

func TestAuditRecordsMutations(t *testing.T) {
	env := newTestEnv(t, Config{})
	support := bearer(env.auth.secrets[apitoken.RoleSupport])
	env.do(t, "GET", "/api/v1/devices", "")                                                          // a read: not recorded
	env.do(t, "POST", "/api/v1/tokens", `{"name":"n","role":"support"}`)                             // 201
	env.do(t, "DELETE", "/api/v1/tokens/nope", "")                                                   // 404
	env.do(t, "DELETE", "/api/v1/tokens/nope", "", "Authorization", support)                         // 403
	env.do(t, "DELETE", "/api/v1/tokens/nope", "", "Authorization", "")                              // 401: not recorded
	env.do(t, "PUT", "/api/v1/devices/dev-a/objects/1/0/1", `{"value":60}`, "X-Request-ID", "req-9") // 200

	r := env.do(t, "GET", "/api/v1/audit", "")
	if r.status != 200 {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	var page struct {
		Entries    []auditEntryJSON `json:"entries"`
		NextCursor string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, fmt.Sprintf("%s %s %s %d %s", e.Role, e.Action, e.Target, e.Status, e.Outcome))
	}
	want := []string{
		"admin PUT /api/v1/devices/:endpoint/objects/* /api/v1/devices/dev-a/objects/1/0/1 200 success",
		"support DELETE /api/v1/tokens/:id /api/v1/tokens/nope 403 denied",
		"admin DELETE /api/v1/tokens/:id /api/v1/tokens/nope 404 failure",
		"admin POST /api/v1/tokens /api/v1/tokens 201 success",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit entries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := page.Entries[0]
	if first.Actor != "token:"+env.auth.ids[apitoken.RoleAdmin] || first.ActorName != "admin" || first.RemoteAddr != "192.0.2.1" ||
		first.Detail["request_id"] != "req-9" || first.At.IsZero() {
		t.Fatalf("entry %+v", first)
	}
	if page.Entries[2].Detail["error"] != codeNotFound || page.Entries[3].Detail["token_id"] == "" {
		t.Fatalf("details %v / %v", page.Entries[2].Detail, page.Entries[3].Detail)
	}

	// Filters and paging.
	r = env.do(t, "GET", "/api/v1/audit?actor=token:"+env.auth.ids[apitoken.RoleSupport], "")
	if !strings.Contains(string(r.body), `"status":403`) || strings.Count(string(r.body), `"seq"`) != 1 {
		t.Fatalf("actor filter: %s", r.body)
	}
	r = env.do(t, "GET", "/api/v1/audit?action=POST+/api/v1/tokens", "")
	if strings.Count(string(r.body), `"seq"`) != 1 {
		t.Fatalf("action filter: %s", r.body)
	}
	r = env.do(t, "GET", "/api/v1/audit?limit=3", "")
	_ = json.Unmarshal(r.body, &page)
	if len(page.Entries) != 3 || page.NextCursor == "" {
		t.Fatalf("limit 3: %s", r.body)
	}
	r = env.do(t, "GET", "/api/v1/audit?limit=3&cursor="+page.NextCursor, "")
	_ = json.Unmarshal(r.body, &page)
	if len(page.Entries) != 1 || page.Entries[0].Action != "POST /api/v1/tokens" {
		t.Fatalf("second page: %s", r.body)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if r := env.do(t, "GET", "/api/v1/audit?since="+future, ""); strings.Contains(string(r.body), `"seq"`) {
		t.Fatalf("since the future: %s", r.body)
	}
	for _, q := range []string{"since=yesterday", "until=1", "limit=0", "limit=x", "cursor=-1"} {
		wantError(t, env.do(t, "GET", "/api/v1/audit?"+q, ""), 400, codeInvalidQuery)
	}
}

// TestLastUsedThrottled: LastUsedAt is written once a minute per token, not on every request.
func TestLastUsedThrottled(t *testing.T) {
	env := newTestEnv(t, Config{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	env.auth.tokens.SetClock(func() time.Time { return now })
	for range 5 {
		env.do(t, "GET", "/api/v1/devices", "")
	}
	if env.auth.store.touchs != 1 {
		t.Fatalf("%d writes of last_used_at for 5 requests in one second, want 1", env.auth.store.touchs)
	}
	now = now.Add(61 * time.Second)
	env.do(t, "GET", "/api/v1/devices", "")
	env.do(t, "GET", "/api/v1/devices", "")
	if env.auth.store.touchs != 2 {
		t.Fatalf("%d writes after a minute, want 2", env.auth.store.touchs)
	}
	tok, _ := env.auth.store.Token(context.Background(), env.auth.ids[apitoken.RoleAdmin])
	if !tok.LastUsedAt.Equal(now) {
		t.Fatalf("last_used_at %v, want %v", tok.LastUsedAt, now)
	}
}
