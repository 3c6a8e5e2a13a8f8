package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapCLISet: `lwota bootstrap set` sends the configuration the flags describe to
// PUT /api/v1/bootstrap/configs/endpoint/NAME, with LWOTA_SERVER and LWOTA_TOKEN from the
// environment; flags that do not go together are refused before any call.
func TestBootstrapCLISet(t *testing.T) {
	var got struct {
		method, path, auth string
		body               map[string]any
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.auth = r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		got.body = nil
		_ = json.Unmarshal(b, &got.body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer hs.Close()
	env := func(k string) string { return map[string]string{"LWOTA_SERVER": hs.URL, "LWOTA_TOKEN": "tok"}[k] }
	dir := t.TempDir()
	pem := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, srv := pem("dev.pem", "DEVICE-CERT"), pem("dev.key", "DEVICE-KEY"), pem("srv.pem", "SERVER-CERT")
	tests := []struct {
		name string
		args []string
		err  string
		psk  string
		keys []string // body fields that must be present
	}{
		{name: "nosec", args: []string{"set", "dev-1", "--server-uri", "coap://h:5683"}, psk: "none"},
		{name: "stored psk", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--lifetime", "60", "--psk-identity", "id", "--psk-key", "0011",
			"--bootstrap-psk-identity", "bs", "--bootstrap-psk-key", "aabb"}, psk: "stored", keys: []string{"dm_psk", "bootstrap_psk", "lifetime"}},
		{name: "generate", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--generate-psk"}, psk: "generate"},
		{name: "half a psk", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--psk-identity", "id"}, err: "go together"},
		{name: "psk and generate", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--psk-identity", "id", "--psk-key", "00", "--generate-psk"}, err: "not both"},
		{name: "certificate", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--certificate", cert, "--private-key", key, "--server-certificate", srv},
			psk: "x509", keys: []string{"dm_x509"}},
		{name: "certificate without key", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--certificate", cert}, err: "go together"},
		{name: "certificate and psk", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--certificate", cert, "--private-key", key, "--generate-psk"}, err: "not both"},
		{name: "missing file", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--certificate", cert, "--private-key", filepath.Join(dir, "nope")}, err: "nope"},
		{name: "no uri", args: []string{"set", "dev-1"}, err: "--server-uri is required"},
		{name: "bad hex", args: []string{"set", "dev-1", "--server-uri", "coaps://h:5684", "--psk-identity", "id", "--psk-key", "xyz"}, err: "must be hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got.method = ""
			var out, errb bytes.Buffer
			_, err := execute(context.Background(), append([]string{"bootstrap"}, tt.args...), &out, &errb, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || got.method != "" {
					t.Fatalf("err %v (call %s), want %q and no call", err, got.method, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.method != "PUT" || got.path != "/api/v1/bootstrap/configs/endpoint/dev-1" || got.auth != "Bearer tok" || got.body["psk"] != tt.psk {
				t.Fatalf("sent %s %s %q %v", got.method, got.path, got.auth, got.body)
			}
			if x, ok := got.body["dm_x509"].(map[string]any); ok && (x["certificate"] != "DEVICE-CERT" || x["private_key"] != "DEVICE-KEY" || x["server_certificate"] != "SERVER-CERT") {
				t.Fatalf("dm_x509 %v", x)
			}
			for _, k := range tt.keys {
				if _, ok := got.body[k]; !ok {
					t.Fatalf("body lacks %s: %v", k, got.body)
				}
			}
		})
	}
}
