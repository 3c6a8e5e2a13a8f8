package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/credentials"
)

// importRefused decodes a 422 refusal and returns its lines as "line endpoint: message".
func importRefused(t *testing.T, r response) []string {
	t.Helper()
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422; body %s", r.status, r.body)
	}
	var body importRefusal
	decodeJSON(t, r.body, &body)
	if body.Error.Code != codeInvalidRequest || !strings.Contains(body.Error.Message, "nothing was stored") {
		t.Fatalf("refusal %s", r.body)
	}
	var out []string
	for _, l := range body.Error.Lines {
		out = append(out, fmt.Sprintf("%d %s: %s", l.Line, l.Endpoint, l.Message))
	}
	return out
}

func TestCredentialsImport(t *testing.T) {
	const path = "/api/v1/credentials/import"
	csvType := []string{"Content-Type", "text/csv; charset=utf-8"}
	jsonType := []string{"Content-Type", "application/json"}
	for _, tt := range []struct {
		name   string
		body   string
		header []string
		lines  []string // empty: stored
		want   map[string]string
	}{
		{
			name:   "csv",
			body:   "endpoint,identity,key\n# line 2 is a comment\ndev-1,id-1,6b31\n\n dev-2 , id-2 ,6B32\n",
			header: csvType,
			want:   map[string]string{"dev-1": "id-1/k1", "dev-2": "id-2/k2"},
		},
		{
			name:   "json",
			body:   `{"credentials": [{"endpoint": "dev-1", "psk": {"identity": "id-1", "key": "6b31"}}, {"endpoint": "dev-2", "psk": {"identity": "id-2", "key": "6b32"}}]}`,
			header: jsonType,
			want:   map[string]string{"dev-1": "id-1/k1", "dev-2": "id-2/k2"},
		},
		{
			name:   "csv with bad lines",
			body:   "endpoint,identity,key\ndev-1,id-1,6b31\ndev-2,id-1,6b32\ndev-3,id-3,zz\ndev-4,id-4\ndev-1,id-5,6b35\ndev-6,held-id,6b36\n",
			header: csvType,
			lines: []string{
				`3 dev-2: identity "id-1" is also on line 2`,
				"4 dev-3: key must be hex",
				"5 : 2 fields, want 3 (endpoint,identity,key)",
				`6 dev-1: endpoint "dev-1" is also on line 2`,
				`7 dev-6: identity "held-id" belongs to endpoint "holder"`,
			},
		},
		{
			name: "json with bad lines",
			body: `{"credentials": [
  {"endpoint": "dev-1", "psk": {"identity": "id-1", "key": "6b31"}},
  {"endpoint": "dev-2"},
  {"endpoint": "dev-3", "psk": {"identity": "id-1", "key": "6b33"}},
  {"endpoint": "dev-4",
   "psk": {"identity": "id-4", "key": "xyz"}}
]}`,
			header: jsonType,
			lines: []string{
				"3 dev-2: psk is missing",
				`4 dev-3: identity "id-1" is also on line 2`,
				"5 dev-4: key must be hex",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			creds := &fakeCredentials{byEP: map[string]credentials.Credential{"holder": {Identity: "held-id", Key: []byte("k")}}}
			env.api.WithCredentials(creds)
			r := env.do(t, http.MethodPost, path, tt.body, tt.header...)
			if tt.lines != nil {
				if got := importRefused(t, r); strings.Join(got, "\n") != strings.Join(tt.lines, "\n") {
					t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.lines, "\n"))
				}
				if len(creds.byEP) != 1 {
					t.Fatalf("a refused import stored %v", creds.byEP)
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var ans importAnswer
			decodeJSON(t, r.body, &ans)
			if ans != (importAnswer{Imported: len(tt.want), Created: len(tt.want)}) {
				t.Fatalf("answer %+v", ans)
			}
			for ep, want := range tt.want {
				if c := creds.byEP[ep]; c.Identity+"/"+string(c.Key) != want {
					t.Errorf("%s: %s/%s, want %s", ep, c.Identity, c.Key, want)
				}
			}
		})
	}
}

func TestCredentialsImportErrors(t *testing.T) {
	const path = "/api/v1/credentials/import"
	env := newTestEnv(t, Config{})
	env.api.WithCredentials(&fakeCredentials{byEP: map[string]credentials.Credential{}})
	csvType := []string{"Content-Type", "text/csv"}
	jsonType := []string{"Content-Type", "application/json"}
	for _, tt := range []struct {
		name, body string
		header     []string
		status     int
		code       string
	}{
		{"no header", "dev-1,id-1,6b31\n", csvType, 400, codeInvalidRequest},
		{"empty csv", "", csvType, 400, codeInvalidRequest},
		{"broken quote", "endpoint,identity,key\n\"dev-1,id-1,6b31\n", csvType, 400, codeInvalidRequest},
		{"not an object", `[]`, jsonType, 400, codeInvalidJSON},
		{"unknown field", `{"credentials": [], "x": 1}`, jsonType, 400, codeInvalidJSON},
		{"unknown item field", `{"credentials": [{"endpoint": "a", "psk": {"identity": "b", "key": "00"}, "x": 1}]}`, jsonType, 400, codeInvalidJSON},
		{"no credentials field", `{}`, jsonType, 400, codeInvalidJSON},
		{"trailing data", `{"credentials": []} {}`, jsonType, 400, codeInvalidJSON},
		{"no credentials", `{"credentials": []}`, jsonType, 400, codeInvalidRequest},
		{"header only", "endpoint,identity,key\n", csvType, 400, codeInvalidRequest},
		{"other media type", "a", []string{"Content-Type", "application/xml"}, 415, codeUnsupportedMediaType},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, env.do(t, http.MethodPost, path, tt.body, tt.header...), tt.status, tt.code)
		})
	}
	// Admins only.
	r := env.do(t, http.MethodPost, path, "endpoint,identity,key\n", "Content-Type", "text/csv",
		"Authorization", bearer(env.auth.secrets[apitoken.RoleRelease]))
	wantError(t, r, http.StatusForbidden, codeForbidden)
}

// TestCredentialsImportTooManyProblems: the refusal lists at most maxReportedLines lines.
func TestCredentialsImportTooManyProblems(t *testing.T) {
	env := newTestEnv(t, Config{MaxBodyBytes: 4 << 20})
	env.api.WithCredentials(&fakeCredentials{byEP: map[string]credentials.Credential{}})
	var b strings.Builder
	b.WriteString("endpoint,identity,key\n")
	for i := range maxReportedLines + 5 {
		fmt.Fprintf(&b, "dev-%d,id-%d,not-hex\n", i, i)
	}
	r := env.do(t, http.MethodPost, "/api/v1/credentials/import", b.String(), "Content-Type", "text/csv")
	if lines := importRefused(t, r); len(lines) != maxReportedLines {
		t.Fatalf("%d lines listed", len(lines))
	}
	var body map[string]map[string]any
	_ = json.Unmarshal(r.body, &body)
	if msg := body["error"]["message"].(string); !strings.Contains(msg, "1005 of 1005") || !strings.Contains(msg, "the first 1000") {
		t.Fatalf("message %q", msg)
	}
}

// TestCredentialsImportBodyLimit: a factory file is held to MaxImportBytes, not to the small
// MaxBodyBytes of every other JSON call.
func TestCredentialsImportBodyLimit(t *testing.T) {
	env := newTestEnv(t, Config{MaxBodyBytes: 1 << 10, MaxImportBytes: 64 << 10})
	creds := &fakeCredentials{byEP: map[string]credentials.Credential{}}
	env.api.WithCredentials(creds)
	file := func(n int) string {
		var b strings.Builder
		b.WriteString("endpoint,identity,key\n")
		for i := range n {
			fmt.Fprintf(&b, "dev-%04d,id-%04d,6b31\n", i, i)
		}
		return b.String()
	}
	if r := env.do(t, http.MethodPost, "/api/v1/credentials/import", file(100), "Content-Type", "text/csv"); r.status != http.StatusOK {
		t.Fatalf("a 2.4 KiB file over the 1 KiB JSON limit: %d %s", r.status, r.body)
	}
	if len(creds.byEP) != 100 {
		t.Fatalf("%d credentials stored, want 100", len(creds.byEP))
	}
	wantError(t, env.do(t, http.MethodPost, "/api/v1/credentials/import", file(4000), "Content-Type", "text/csv"),
		http.StatusRequestEntityTooLarge, codeBodyTooLarge)
	wantError(t, env.do(t, http.MethodPut, "/api/v1/devices/dev-1/credentials", `{"psk": {"identity": "`+strings.Repeat("a", 2000)+`", "key": "00"}}`,
		"Content-Type", "application/json"), http.StatusRequestEntityTooLarge, codeBodyTooLarge)
}
