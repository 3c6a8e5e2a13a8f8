package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestOutputFormats: -o json prints the API's JSON, -o yaml the same document as YAML, -o table
// (or nothing) the table; --json is -o json.
func TestOutputFormats(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/campaigns":
			fmt.Fprintf(w, `{"campaigns": [%s]}`, testCampaign)
		case "/api/v1/campaigns/cmp_1":
			fmt.Fprint(w, testCampaign)
		default:
			http.NotFound(w, r)
		}
	}))
	defer hs.Close()
	env := map[string]string{"LWOTA_SERVER": hs.URL}
	var api any
	if err := json.Unmarshal([]byte(testCampaign), &api); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		check func(t *testing.T, stdout string)
	}{
		{[]string{"campaign", "show", "cmp_1", "-o", "json"}, func(t *testing.T, stdout string) {
			var got any
			if err := json.Unmarshal([]byte(stdout), &got); err != nil || !reflect.DeepEqual(got, api) {
				t.Fatalf("not the API's JSON (%v):\n%s", err, stdout)
			}
		}},
		{[]string{"campaign", "show", "cmp_1", "--json"}, func(t *testing.T, stdout string) {
			var got any
			if err := json.Unmarshal([]byte(stdout), &got); err != nil || !reflect.DeepEqual(got, api) {
				t.Fatalf("not the API's JSON (%v):\n%s", err, stdout)
			}
		}},
		{[]string{"campaign", "show", "cmp_1", "-o", "yaml"}, func(t *testing.T, stdout string) {
			var got any
			if err := yaml.Unmarshal([]byte(stdout), &got); err != nil || !reflect.DeepEqual(got, api) || !strings.Contains(stdout, "name: eu rollout\n") {
				t.Fatalf("not the API's document as YAML (%v):\n%s", err, stdout)
			}
		}},
		{[]string{"campaign", "show", "cmp_1"}, func(t *testing.T, stdout string) {
			if !strings.Contains(stdout, "> wave 2  [") {
				t.Fatalf("no table:\n%s", stdout)
			}
		}},
		{[]string{"campaign", "list", "-o", "yaml"}, func(t *testing.T, stdout string) {
			var got []any
			if err := yaml.Unmarshal([]byte(stdout), &got); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], api) {
				t.Fatalf("not the list as YAML (%v):\n%s", err, stdout)
			}
		}},
		{[]string{"campaign", "list", "-o", "table"}, func(t *testing.T, stdout string) {
			if !strings.HasPrefix(stdout, "ID ") || !strings.Contains(stdout, "cmp_1") || !strings.Contains(stdout, "eu rollout") {
				t.Fatalf("no table:\n%s", stdout)
			}
		}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runExit(t, env, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			tt.check(t, stdout)
		})
	}
}

// TestOutputAuto: the commands CI pipes into jq (image, key, token, credentials) print JSON when
// stdout is not a terminal, and take -o table or yaml.
func TestOutputAuto(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"tokens": [{"id": "tok-1", "name": "ci", "role": "ci", "created_at": "2026-03-01T12:00:00Z"}]}`)
	}))
	defer hs.Close()
	env := map[string]string{"LWOTA_SERVER": hs.URL}
	code, stdout, _ := runExit(t, env, "token", "list")
	var list []map[string]any
	if code != exitOK || json.Unmarshal([]byte(stdout), &list) != nil || len(list) != 1 || list[0]["id"] != "tok-1" {
		t.Fatalf("exit %d, not JSON: %q", code, stdout)
	}
	code, stdout, _ = runExit(t, env, "token", "list", "-o", "table")
	if code != exitOK || !strings.HasPrefix(stdout, "ID ") || !strings.Contains(stdout, "tok-1") || !strings.Contains(stdout, "2026-03-01T12:00:00Z") {
		t.Fatalf("exit %d, not a table: %q", code, stdout)
	}
	code, stdout, _ = runExit(t, env, "token", "list", "-o", "yaml")
	if code != exitOK || !strings.Contains(stdout, "- created_at: \"2026-03-01T12:00:00Z\"\n  id: tok-1\n") {
		t.Fatalf("exit %d, not YAML: %q", code, stdout)
	}
}
