package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lwota/lwota/firmware"
)

const testPEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"

func TestSigningKeys(t *testing.T) {
	env, f := newImageEnv(t, 0)
	pemJSON := strings.ReplaceAll(testPEM, "\n", `\n`)

	r := env.do(t, http.MethodPost, "/api/v1/signing-keys", `{"name":"release","public_key_pem":"`+pemJSON+`"}`,
		"Content-Type", "application/json")
	if r.status != http.StatusCreated {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	jsonEqual(t, r.body, `{"id":"key-1","name":"release","algorithm":"ed25519","public_key_pem":"`+pemJSON+`",
		"fingerprint":"ab12","created_at":"2026-03-01T12:00:00Z"}`)
	if f.keys[0].PublicKeyPEM != testPEM {
		t.Fatalf("catalog got PEM %q", f.keys[0].PublicKeyPEM)
	}
	env.do(t, http.MethodPost, "/api/v1/signing-keys", `{"name":"old","public_key_pem":"`+pemJSON+`"}`)

	r = env.do(t, http.MethodDelete, "/api/v1/signing-keys/key-2", "")
	if r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	var k keyJSON
	decodeJSON(t, r.body, &k)
	if k.ID != "key-2" || k.RevokedAt != testNow.Add(3600e9) {
		t.Fatalf("revoked key %s", r.body)
	}

	r = env.do(t, http.MethodGet, "/api/v1/signing-keys", "")
	var l keyList
	decodeJSON(t, r.body, &l)
	if r.status != 200 || len(l.Keys) != 2 || !l.Keys[0].RevokedAt.IsZero() || l.Keys[1].RevokedAt.IsZero() {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), `"revoked_at"`) || strings.Count(string(r.body), `"revoked_at"`) != 1 {
		t.Fatalf("revoked_at should appear for the revoked key only: %s", r.body)
	}
}

func TestSigningKeyErrors(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		header  []string
		keyErr  error
		status  int
		code    string
		message string
	}{
		{name: "no name", method: "POST", target: "/api/v1/signing-keys", body: `{"public_key_pem":"x"}`, status: 400, code: codeInvalidKey},
		{name: "no key", method: "POST", target: "/api/v1/signing-keys", body: `{"name":"x"}`, status: 400, code: codeInvalidKey},
		{name: "unknown field", method: "POST", target: "/api/v1/signing-keys", body: `{"name":"x","public_key_pem":"y","pem":1}`, status: 400, code: codeInvalidJSON},
		{name: "empty body", method: "POST", target: "/api/v1/signing-keys", status: 400, code: codeInvalidJSON},
		{name: "not JSON", method: "POST", target: "/api/v1/signing-keys", body: "name=x", header: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: codeUnsupportedMediaType},
		{name: "catalog refuses the key", method: "POST", target: "/api/v1/signing-keys", body: `{"name":"x","public_key_pem":"y"}`,
			keyErr: fmt.Errorf("%w: no PEM block in public key", firmware.ErrInvalid), status: 400, code: codeInvalidKey, message: "no PEM block in public key"},
		{name: "store down", method: "GET", target: "/api/v1/signing-keys", keyErr: fmt.Errorf("list keys: %w", firmware.ErrStorage), status: 503, code: codeStorageUnavailable},
		{name: "revoke unknown", method: "DELETE", target: "/api/v1/signing-keys/key-9", status: 404, code: codeNotFound, message: "signing key key-9 does not exist"},
		{name: "wrong method", method: "PUT", target: "/api/v1/signing-keys/key-9", status: 405, code: codeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newImageEnv(t, 0)
			f.keyErr = tt.keyErr
			msg := wantError(t, env.do(t, tt.method, tt.target, tt.body, tt.header...), tt.status, tt.code)
			if tt.message != "" && msg != tt.message {
				t.Fatalf("message %q, want %q", msg, tt.message)
			}
		})
	}
}
