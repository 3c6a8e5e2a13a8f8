package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/dm"
)

// fakeBootstrap keeps configurations in memory; keys it is given are recorded, never returned.
type fakeBootstrap struct {
	cfgs     map[string]*bootstrap.Config
	dm, bs   *bootstrap.PSK
	sessions []*bootstrap.Session
}

func (f *fakeBootstrap) SetConfig(_ context.Context, c *bootstrap.Config, dmPSK, bsPSK *bootstrap.PSK) error {
	if err := c.Normalize(); err != nil {
		return err
	}
	f.cfgs[string(c.Scope)+":"+c.Name], f.dm, f.bs = c, dmPSK, bsPSK
	return nil
}

func (f *fakeBootstrap) Config(_ context.Context, scope bootstrap.Scope, name string) (*bootstrap.Config, error) {
	if c, ok := f.cfgs[string(scope)+":"+name]; ok {
		return c, nil
	}
	return nil, bootstrap.ErrNotFound
}

func (f *fakeBootstrap) Configs(context.Context) ([]*bootstrap.Config, error) {
	var out []*bootstrap.Config
	for _, c := range f.cfgs {
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeBootstrap) DeleteConfig(_ context.Context, scope bootstrap.Scope, name string) error {
	if _, ok := f.cfgs[string(scope)+":"+name]; !ok {
		return bootstrap.ErrNotFound
	}
	delete(f.cfgs, string(scope)+":"+name)
	return nil
}

func (f *fakeBootstrap) Sessions(context.Context, string, int) ([]*bootstrap.Session, error) {
	return f.sessions, nil
}

type fakeBootstrapCreds struct{ puts map[string]string }

func (f *fakeBootstrapCreds) Put(_ context.Context, ep, identity string, _ []byte) error {
	f.puts[ep] = identity
	return nil
}
func (f *fakeBootstrapCreds) Delete(context.Context, string) error { return credentials.ErrNotFound }
func (f *fakeBootstrapCreds) Import(context.Context, []credentials.ImportEntry) (*credentials.ImportResult, error) {
	return &credentials.ImportResult{}, nil
}
func (f *fakeBootstrapCreds) Check(context.Context, []credentials.ImportEntry) ([]credentials.LineError, error) {
	return nil, nil
}

// TestBootstrapRoutes: configurations are written by release and admin, read by support too,
// and never carry a key back; a bad configuration is 400 with the reason; the trigger executes
// /1/0/9.
func TestBootstrapRoutes(t *testing.T) {
	env := newTestEnv(t, Config{})
	fb := &fakeBootstrap{cfgs: map[string]*bootstrap.Config{}}
	env.api.WithBootstrap(fb, &fakeBootstrapCreds{puts: map[string]string{}})
	as := func(role apitoken.Role) string { return bearer(env.auth.secrets[role]) }
	body := `{"server_uri":"coaps://lwota:5684","lifetime":60,"dm_psk":{"identity":"dev-a","key":"00112233"},"bootstrap_psk":{"identity":"bs-a","key":"aabbcc"}}`

	wantError(t, env.do(t, "PUT", "/api/v1/bootstrap/configs/endpoint/dev-a", body, "Content-Type", "application/json", "Authorization", as(apitoken.RoleSupport)), 403, codeForbidden)
	r := env.do(t, "PUT", "/api/v1/bootstrap/configs/endpoint/dev-a", body, "Content-Type", "application/json", "Authorization", as(apitoken.RoleRelease))
	if r.status != 200 || fb.dm == nil || string(fb.dm.Key) != "\x00\x11\x22\x33" || fb.bs.Identity != "bs-a" {
		t.Fatalf("put: %d %s; dm %+v bs %+v", r.status, r.body, fb.dm, fb.bs)
	}
	r = env.do(t, "GET", "/api/v1/bootstrap/configs/endpoint/dev-a", "", "Authorization", as(apitoken.RoleSupport))
	if r.status != 200 || strings.Contains(string(r.body), "00112233") || strings.Contains(string(r.body), "aabbcc") {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	var got bootstrap.Config
	if err := json.Unmarshal(r.body, &got); err != nil || got.PSK != bootstrap.PSKStored || got.Lifetime != 60 {
		t.Fatalf("get: %+v %v", got, err)
	}
	msg := wantError(t, env.do(t, "PUT", "/api/v1/bootstrap/configs/prefix/batch-", `{"server_uri":"coaps://lwota:5684","psk":"stored"}`, "Content-Type", "application/json"), 400, codeInvalidRequest)
	if !strings.Contains(msg, "must be generated") {
		t.Fatalf("message %q", msg)
	}
	wantError(t, env.do(t, "PUT", "/api/v1/bootstrap/configs/nonsense/x", `{"server_uri":"coap://a:1"}`, "Content-Type", "application/json"), 400, codeInvalidPath)
	wantError(t, env.do(t, "DELETE", "/api/v1/bootstrap/configs/endpoint/nope", ""), 404, codeNotFound)
	wantError(t, env.do(t, "POST", "/api/v1/bootstrap/devices/dev-a/trigger", "", "Authorization", as(apitoken.RoleSupport)), 403, codeForbidden)
	r = env.do(t, "POST", "/api/v1/bootstrap/devices/dev-a/trigger", "", "Authorization", as(apitoken.RoleRelease))
	if r.status != http.StatusOK {
		t.Fatalf("trigger: %d %s", r.status, r.body)
	}
	if c := env.op.onlyCall(t); c.endpoint != "dev-a" || c.req.Op != dm.OpExecute || c.req.Path.String() != "/1/0/9" {
		t.Fatalf("trigger sent %+v", c)
	}
}
