package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/lwota/lwota/server/credentials"
)

// fakeCredentials keeps credentials in memory with the Manager's rules.
type fakeCredentials struct {
	mu   sync.Mutex
	byEP map[string]credentials.Credential
}

func (f *fakeCredentials) Put(_ context.Context, endpoint, identity string, key []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if identity == "" || len(key) == 0 {
		return fmt.Errorf("%w: identity and key are required", credentials.ErrInvalid)
	}
	for ep, c := range f.byEP {
		if c.Identity == identity && ep != endpoint {
			return credentials.ErrIdentityTaken
		}
	}
	f.byEP[endpoint] = credentials.Credential{Endpoint: endpoint, Identity: identity, Key: key}
	return nil
}

func (f *fakeCredentials) Delete(_ context.Context, endpoint string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byEP[endpoint]; !ok {
		return credentials.ErrNotFound
	}
	delete(f.byEP, endpoint)
	return nil
}

// Check applies the Manager's import rules that the API tests need: duplicates in the import and
// identities of devices outside it.
func (f *fakeCredentials) Check(_ context.Context, entries []credentials.ImportEntry) ([]credentials.LineError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var problems []credentials.LineError
	eps, ids := map[string]int{}, map[string]int{}
	for i, e := range entries {
		bad := func(msg string) {
			problems = append(problems, credentials.LineError{Line: e.Line, Index: i, Endpoint: e.Endpoint, Message: msg})
		}
		if l, dup := eps[e.Endpoint]; dup {
			bad(fmt.Sprintf("endpoint %q is also on line %d", e.Endpoint, l))
		}
		if l, dup := ids[e.Identity]; dup {
			bad(fmt.Sprintf("identity %q is also on line %d", e.Identity, l))
		}
		eps[e.Endpoint], ids[e.Identity] = e.Line, e.Line
		for ep, c := range f.byEP {
			if c.Identity == e.Identity && ep != e.Endpoint {
				bad(fmt.Sprintf("identity %q belongs to endpoint %q", e.Identity, ep))
			}
		}
	}
	return problems, nil
}

func (f *fakeCredentials) Import(ctx context.Context, entries []credentials.ImportEntry) (*credentials.ImportResult, error) {
	problems, _ := f.Check(ctx, entries)
	if len(problems) > 0 {
		return nil, &credentials.ImportError{Lines: problems}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := &credentials.ImportResult{}
	for _, e := range entries {
		if _, ok := f.byEP[e.Endpoint]; ok {
			res.Replaced++
		} else {
			res.Created++
		}
		f.byEP[e.Endpoint] = credentials.Credential{Endpoint: e.Endpoint, Identity: e.Identity, Key: e.Key}
	}
	return res, nil
}

func TestCredentials(t *testing.T) {
	env := newTestEnv(t, Config{})
	creds := &fakeCredentials{byEP: map[string]credentials.Credential{}}
	env.api.WithCredentials(creds)
	const path = "/api/v1/devices/dev-1/credentials"
	ct := []string{"Content-Type", "application/json"}

	r := env.do(t, http.MethodPut, path, `{"psk":{"identity":"id-1","key":"736563726574"}}`, ct...)
	if r.status != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if c := creds.byEP["dev-1"]; c.Identity != "id-1" || string(c.Key) != "secret" {
		t.Fatalf("stored %+v", c)
	}
	for _, tt := range []struct {
		name, method, target, body string
		header                     []string
		status                     int
		code                       string
	}{
		{"not hex", "PUT", path, `{"psk":{"identity":"id-1","key":"zz"}}`, ct, 400, codeInvalidJSON},
		{"no psk", "PUT", path, `{}`, ct, 400, codeInvalidJSON},
		{"unknown field", "PUT", path, `{"psk":{"identity":"id-1","key":"00","x":1}}`, ct, 400, codeInvalidJSON},
		{"empty identity", "PUT", path, `{"psk":{"identity":"","key":"00"}}`, ct, 400, codeInvalidRequest},
		{"identity of another device", "PUT", "/api/v1/devices/dev-2/credentials", `{"psk":{"identity":"id-1","key":"00"}}`, ct, 409, codeIdentityTaken},
		{"not JSON", "PUT", path, `psk`, []string{"Content-Type", "text/plain"}, 415, codeUnsupportedMediaType},
		{"delete missing", "DELETE", "/api/v1/devices/dev-2/credentials", "", nil, 404, codeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, env.do(t, tt.method, tt.target, tt.body, tt.header...), tt.status, tt.code)
		})
	}
	if r := env.do(t, http.MethodDelete, path, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if _, ok := creds.byEP["dev-1"]; ok {
		t.Fatal("DELETE left the credential")
	}
}

func TestCredentialsWithoutStore(t *testing.T) {
	env := newTestEnv(t, Config{})
	wantError(t, env.do(t, http.MethodPut, "/api/v1/devices/dev-1/credentials", `{"psk":{"identity":"a","key":"00"}}`,
		"Content-Type", "application/json"), http.StatusNotFound, codeNotFound)
}
