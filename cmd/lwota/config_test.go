package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testConfig = `current_profile: staging
profiles:
  staging:
    server: http://staging.example:8080
    token: lwota_staging
  prod:
    server: https://prod.example
    token: lwota_prod
  tokenless:
    server: http://other.example
`

// TestConfigPrecedence: a flag beats its environment variable, which beats the profile, which
// beats the default; the profile is --profile, else LWOTA_CONFIG_PROFILE, else current_profile.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lwota"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lwota", "config.yaml"), []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte("profiles:\n  ci: {server: 'http://ci.example', token: lwota_ci}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	xdg := map[string]string{"XDG_CONFIG_HOME": dir}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, tt := range []struct {
		name          string
		env           map[string]string
		args          []string
		server, token string
		err           string
	}{
		{"no file: the default", map[string]string{"HOME": t.TempDir()}, nil, defaultServer, "", ""},
		{"the current profile", xdg, nil, "http://staging.example:8080", "lwota_staging", ""},
		{"~/.config without XDG_CONFIG_HOME", map[string]string{"HOME": filepath.Dir(dir)}, nil, defaultServer, "", ""},
		{"--profile", xdg, []string{"--profile", "prod"}, "https://prod.example", "lwota_prod", ""},
		{"LWOTA_CONFIG_PROFILE", with(xdg, "LWOTA_CONFIG_PROFILE", "prod"), nil, "https://prod.example", "lwota_prod", ""},
		{"--profile beats LWOTA_CONFIG_PROFILE", with(xdg, "LWOTA_CONFIG_PROFILE", "prod"), []string{"--profile", "tokenless"}, "http://other.example", "", ""},
		{"the environment beats the profile", with(xdg, "LWOTA_SERVER", "http://env.example", "LWOTA_TOKEN", "lwota_env"), nil,
			"http://env.example", "lwota_env", ""},
		{"a flag beats the environment", with(xdg, "LWOTA_SERVER", "http://env.example", "LWOTA_TOKEN", "lwota_env"),
			[]string{"--server", "http://flag.example", "--token", "lwota_flag"}, "http://flag.example", "lwota_flag", ""},
		{"one from each", with(xdg, "LWOTA_TOKEN", "lwota_env"), []string{"--profile", "prod"}, "https://prod.example", "lwota_env", ""},
		{"--config", xdg, []string{"--config", other, "--profile", "ci"}, "http://ci.example", "lwota_ci", ""},
		{"LWOTA_CONFIG", with(xdg, "LWOTA_CONFIG", other, "LWOTA_CONFIG_PROFILE", "ci"), nil, "http://ci.example", "lwota_ci", ""},
		{"an unknown profile", xdg, []string{"--profile", "nope"}, "", "", `profile "nope" is not in`},
		{"a --config that does not exist", xdg, []string{"--config", filepath.Join(dir, "missing.yaml")}, "", "", "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			root := newRootCmd(getenv)
			root.SetErr(io.Discard)
			cmd, _, err := root.Find([]string{"image", "list"})
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			conn, err := resolveConnection(cmd, getenv)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conn.server != tt.server || conn.token != tt.token {
				t.Fatalf("server %q token %q, want %q %q", conn.server, conn.token, tt.server, tt.token)
			}
		})
	}
}

// TestConfigProfileUsed: a command sends its request to the profile's server with its token; an
// unknown profile is a usage error; a token in a file others may read gets a warning.
func TestConfigProfileUsed(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys": []}`))
	}))
	defer hs.Close()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	write := func(mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte("profiles:\n  lab: {server: '"+hs.URL+"', token: lwota_lab}\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cfg, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(0o600)
	env := map[string]string{"LWOTA_CONFIG": cfg}
	code, stdout, stderr := runExit(t, env, "key", "list", "--profile", "lab", "-o", "json")
	if code != exitOK || strings.TrimSpace(stdout) != "[]" || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	mu.Lock()
	if len(auth) != 1 || auth[0] != "Bearer lwota_lab" {
		t.Fatalf("requests with Authorization %q, want one with the profile's token", auth)
	}
	mu.Unlock()
	if code, _, stderr := runExit(t, env, "key", "list", "--profile", "labb"); code != exitUsage || !strings.Contains(stderr, "profiles: lab") {
		t.Fatalf("unknown profile: exit %d, stderr %q", code, stderr)
	}

	write(0o644)
	var errOut bytes.Buffer
	code = runMain(t.Context(), []string{"key", "list", "--profile", "lab"}, io.Discard, &errOut, func(k string) string { return env[k] })
	if code != exitOK || !strings.Contains(errOut.String(), "warning: "+cfg+" holds an API token and is readable by others (mode 0644)") {
		t.Fatalf("exit %d, stderr %q: no warning for a readable token", code, errOut.String())
	}
	// Readable, but no token in it: nothing to warn about.
	if err := os.WriteFile(cfg, []byte("profiles:\n  lab: {server: '"+hs.URL+"'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runExit(t, env, "key", "list", "--profile", "lab"); code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// A typo in the file is reported, not ignored.
	if err := os.WriteFile(cfg, []byte("profile:\n  lab: {server: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runExit(t, env, "key", "list"); code == exitOK || !strings.Contains(stderr, "profile") {
		t.Fatalf("a config with an unknown field: exit %d, stderr %q", code, stderr)
	}
}
