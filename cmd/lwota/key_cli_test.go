package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lwota/lwota/api"
)

const cliTestPEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"

func TestKeyCommands(t *testing.T) {
	srv := newAPIServer(t, api.Config{}, 0)
	pub := writeFile(t, "release.pub.pem", []byte(cliTestPEM))
	env := map[string]string{"LWOTA_SERVER": srv.URL, "LWOTA_TOKEN": "t0k"}

	stdout, _, err := runCLI(t, env, "key", "add", "--name", "release-2026", "--public-key", pub)
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := json.Unmarshal([]byte(stdout), &k); err != nil || k["id"] != "key-1" || k["public_key_pem"] != cliTestPEM || k["name"] != "release-2026" {
		t.Fatalf("add printed %v\n%s", err, stdout)
	}
	if srv.cat.keys[0].PublicKeyPEM != cliTestPEM || srv.headers[0].Get("Authorization") != "Bearer t0k" {
		t.Fatalf("server got PEM %q, headers %v", srv.cat.keys[0].PublicKeyPEM, srv.headers[0])
	}
	if _, _, err := runCLI(t, env, "key", "add", "--name", "old", "--public-key", pub); err != nil {
		t.Fatal(err)
	}

	stdout, _, err = runCLI(t, env, "key", "revoke", "key-2")
	if err != nil || !strings.Contains(stdout, `"revoked_at": "2026-03-02T00:00:00Z"`) {
		t.Fatalf("revoke: %v\n%s", err, stdout)
	}

	stdout, _, err = runCLI(t, env, "key", "list")
	var keys []map[string]any
	if err != nil || json.Unmarshal([]byte(stdout), &keys) != nil || len(keys) != 2 || keys[0]["revoked_at"] != nil || keys[1]["revoked_at"] == nil {
		t.Fatalf("list: %v\n%s", err, stdout)
	}
}

func TestKeyCommandErrors(t *testing.T) {
	srv := newAPIServer(t, api.Config{}, 0)
	notPEM := writeFile(t, "key.txt", []byte("ssh-ed25519 AAAA"))
	empty := writeFile(t, "empty.pem", nil)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"key", "add", "--name", "k", "--public-key", notPEM}, "key add k: server answered 400 invalid_key: no PEM public key"},
		{[]string{"key", "add", "--name", "k", "--public-key", empty}, "is empty"},
		{[]string{"key", "add", "--name", "k"}, "key add: --name and --public-key are required"},
		{[]string{"key", "revoke", "key-9"}, "key revoke key-9: server answered 404 not_found: signing key key-9 does not exist"},
		{[]string{"key", "revoke"}, "key revoke: give the key id"},
		{[]string{"key", "list", "extra"}, `key list: unexpected argument "extra"`},
		{[]string{"key"}, "key: no command given"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, map[string]string{"LWOTA_SERVER": srv.URL}, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
