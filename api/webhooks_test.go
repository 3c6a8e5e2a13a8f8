package api

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/sqlstore"
)

// The webhook routes run over a real *webhooks.Dispatcher (not started) and a real SQLite store.

type webhookEnv struct {
	*testEnv
	store *sqlstore.Store
}

func newWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	env := newTestEnv(t, Config{})
	store, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "lwota.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	env.api.WithWebhooks(webhooks.New(webhooks.Config{Now: func() time.Time { return testNow }}, store, nil, nil))
	return &webhookEnv{testEnv: env, store: store}
}

func (env *webhookEnv) create(t *testing.T, body string) webhookJSON {
	t.Helper()
	r := env.do(t, http.MethodPost, "/api/v1/webhooks", body, jsonCT...)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var w webhookJSON
	decodeJSON(t, r.body, &w)
	return w
}

func (env *webhookEnv) list(t *testing.T) []webhookJSON {
	t.Helper()
	r := env.do(t, http.MethodGet, "/api/v1/webhooks", "")
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var out struct{ Webhooks []webhookJSON }
	decodeJSON(t, r.body, &out)
	return out.Webhooks
}

func TestWebhookCreateRefusesBadInput(t *testing.T) {
	env := newWebhookEnv(t)
	for _, tt := range []struct {
		name, body, code, msg string
	}{
		{"no url", `{"kinds":["update_job"]}`, codeInvalidWebhook, "url is required"},
		{"ftp", `{"url":"ftp://h/x","kinds":["update_job"]}`, codeInvalidWebhook, "http:// or https://"},
		{"file", `{"url":"file:///etc/passwd","kinds":["update_job"]}`, codeInvalidWebhook, "http:// or https://"},
		{"relative", `{"url":"/hook","kinds":["update_job"]}`, codeInvalidWebhook, "http:// or https://"},
		{"no host", `{"url":"http:///x","kinds":["update_job"]}`, codeInvalidWebhook, "no host"},
		{"credentials", `{"url":"https://u:p@h/x","kinds":["update_job"]}`, codeInvalidWebhook, "credentials"},
		{"no kinds", `{"url":"https://h/x","kinds":[]}`, codeInvalidWebhook, "at least one"},
		{"unknown kind", `{"url":"https://h/x","kinds":["update_job","notification"]}`, codeInvalidWebhook, `"notification"`},
		{"short secret", `{"url":"https://h/x","kinds":["campaign"],"secret":"short"}`, codeInvalidWebhook, "secret"},
		{"unknown field", `{"url":"https://h/x","kinds":["campaign"],"events":["x"]}`, codeInvalidJSON, ""},
		{"kinds not a list", `{"url":"https://h/x","kinds":"campaign"}`, codeInvalidJSON, ""},
		{"not json", `url=https://h/x`, codeInvalidJSON, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := wantError(t, env.do(t, http.MethodPost, "/api/v1/webhooks", tt.body, jsonCT...), http.StatusBadRequest, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not say %q", msg, tt.msg)
			}
		})
	}
	if subs := env.list(t); len(subs) != 0 {
		t.Fatalf("refused creations stored %d subscriptions", len(subs))
	}
}

func TestWebhookLifecycle(t *testing.T) {
	env := newWebhookEnv(t)
	w := env.create(t, `{"url":"https://hooks.example.com/lwota?token=abc","kinds":["update_job","campaign","update_job"]}`)
	if !strings.HasPrefix(w.ID, "wh_") || len(w.Secret) != 64 || !w.Enabled || w.CreatedBy == "" ||
		strings.Join(w.Kinds, ",") != "campaign,update_job" {
		t.Fatalf("created = %+v", w)
	}
	mine := env.create(t, `{"url":"http://127.0.0.1:9/x","kinds":["registration"],"secret":"0123456789abcdef","enabled":false}`)
	if mine.Secret != "0123456789abcdef" || mine.Enabled {
		t.Fatalf("created with a secret = %+v", mine)
	}
	// The secret is never read back.
	for _, target := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + w.ID} {
		r := env.do(t, http.MethodGet, target, "")
		if r.status != http.StatusOK || strings.Contains(string(r.body), w.Secret) || strings.Contains(string(r.body), "secret") {
			t.Fatalf("GET %s = %d %s", target, r.status, r.body)
		}
	}
	if subs := env.list(t); len(subs) != 2 {
		t.Fatalf("list = %+v", subs)
	}
	// Audited, without the URL's query.
	entries, err := env.auth.log.List(context.Background(), audit.Filter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var noted bool
	for _, e := range entries {
		if e.Action == "POST /api/v1/webhooks" && e.Detail["webhook_id"] == w.ID {
			noted = true
			if strings.Contains(e.Detail["url"], "token=abc") {
				t.Errorf("audit keeps the URL's query: %q", e.Detail["url"])
			}
		}
	}
	if !noted {
		t.Fatalf("no audit entry names %s: %+v", w.ID, entries)
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/webhooks/wh_nope", ""), http.StatusNotFound, codeNotFound)
	wantError(t, env.do(t, http.MethodGet, "/api/v1/webhooks/wh_nope/deliveries", ""), http.StatusNotFound, codeNotFound)
	if r := env.do(t, http.MethodDelete, "/api/v1/webhooks/"+w.ID, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, env.do(t, http.MethodDelete, "/api/v1/webhooks/"+w.ID, ""), http.StatusNotFound, codeNotFound)
	if subs := env.list(t); len(subs) != 1 || subs[0].ID != mine.ID {
		t.Fatalf("after delete: %+v", subs)
	}
}

// TestWebhookDeadLetters: a dead delivery is listed with ?state=dead and a retry makes it
// pending again.
func TestWebhookDeadLetters(t *testing.T) {
	env := newWebhookEnv(t)
	ctx := context.Background()
	w := env.create(t, `{"url":"https://hooks.example.com/x","kinds":["registration"]}`)
	reg := &registration.Registration{ID: "r1", Endpoint: "dev-a", Version: "1.1", Lifetime: 300, Binding: "U",
		RegisteredAt: testNow, UpdatedAt: testNow, LastSeen: testNow}
	if err := env.store.SaveRegistration(ctx, reg); err != nil {
		t.Fatal(err)
	}
	list := func(query string) []deliveryJSON {
		t.Helper()
		r := env.do(t, http.MethodGet, "/api/v1/webhooks/"+w.ID+"/deliveries"+query, "")
		if r.status != http.StatusOK {
			t.Fatalf("deliveries%s: %d %s", query, r.status, r.body)
		}
		var out struct{ Deliveries []deliveryJSON }
		decodeJSON(t, r.body, &out)
		return out.Deliveries
	}
	pending := list("?state=pending")
	if len(pending) != 1 || pending[0].Type != "registered" || pending[0].Endpoint != "dev-a" || pending[0].NextAttemptAt.IsZero() {
		t.Fatalf("pending = %+v", pending)
	}
	if len(list("?state=dead")) != 0 {
		t.Fatal("a dead letter before any attempt")
	}
	ds, err := env.store.ListDeliveries(ctx, webhooks.DeliveryFilter{SubscriptionID: w.ID})
	if err != nil || len(ds) != 1 {
		t.Fatal(ds, err)
	}
	ds[0].State, ds[0].Attempts, ds[0].LastStatus, ds[0].LastError, ds[0].EndedAt = webhooks.StateDead, 20, 500, "HTTP 500", testNow
	if err := env.store.SaveAttempt(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	dead := list("?state=dead")
	if len(dead) != 1 || dead[0].ID != ds[0].ID || dead[0].LastStatus != 500 || dead[0].Attempts != 20 || !dead[0].NextAttemptAt.IsZero() {
		t.Fatalf("dead = %+v", dead)
	}
	wantError(t, env.do(t, http.MethodGet, "/api/v1/webhooks/"+w.ID+"/deliveries?state=lost", ""), http.StatusBadRequest, codeInvalidQuery)
	wantError(t, env.do(t, http.MethodGet, "/api/v1/webhooks/"+w.ID+"/deliveries?limit=0", ""), http.StatusBadRequest, codeInvalidQuery)
	wantError(t, env.do(t, http.MethodPost, "/api/v1/webhooks/"+w.ID+"/deliveries/nope/retry", ""), http.StatusNotFound, codeNotFound)
	r := env.do(t, http.MethodPost, "/api/v1/webhooks/"+w.ID+"/deliveries/"+dead[0].ID+"/retry", "")
	if r.status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if len(list("?state=dead")) != 0 || len(list("?state=pending")) != 1 {
		t.Fatal("retried delivery is not pending")
	}
}

func TestWebhookRoles(t *testing.T) {
	env := newWebhookEnv(t)
	w := env.create(t, `{"url":"https://hooks.example.com/x","kinds":["campaign"]}`)
	body := `{"url":"https://hooks.example.com/y","kinds":["campaign"]}`
	for _, tt := range []struct {
		role                apitoken.Role
		read, write, delete int
	}{
		{apitoken.RoleRelease, 200, 403, 403},
		{apitoken.RoleSupport, 200, 403, 403},
		{apitoken.RoleCI, 403, 403, 403},
	} {
		auth := []string{"Authorization", bearer(env.auth.secrets[tt.role])}
		if r := env.do(t, http.MethodGet, "/api/v1/webhooks/"+w.ID+"/deliveries", "", auth...); r.status != tt.read {
			t.Errorf("%s GET deliveries: %d, want %d", tt.role, r.status, tt.read)
		}
		if r := env.do(t, http.MethodPost, "/api/v1/webhooks", body, append(auth, "Content-Type", "application/json")...); r.status != tt.write {
			t.Errorf("%s POST: %d, want %d", tt.role, r.status, tt.write)
		}
		if r := env.do(t, http.MethodDelete, "/api/v1/webhooks/"+w.ID, "", auth...); r.status != tt.delete {
			t.Errorf("%s DELETE: %d, want %d", tt.role, r.status, tt.delete)
		}
	}
	if subs := env.list(t); len(subs) != 1 {
		t.Fatalf("refused calls changed the subscriptions: %+v", subs)
	}
}
