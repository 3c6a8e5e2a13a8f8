package api

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The OpenAPI document is written by hand (api/openapi.json) and embedded. These tests keep it honest:
// it parses, every route echo serves is in it and every path in it is served, every reference resolves,
// and the error codes it lists are exactly the ones errors.go declares.

type oasDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Info       map[string]any                        `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

func loadOpenAPI(t *testing.T) (oasDoc, any) {
	t.Helper()
	var doc oasDoc
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var raw any
	if err := json.Unmarshal(openAPIDoc, &raw); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc, raw
}

func TestOpenAPIServed(t *testing.T) {
	env := newTestEnv(t, Config{})
	r := env.do(t, http.MethodGet, "/api/v1/openapi.json", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	disk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.body, disk) {
		t.Fatalf("served document differs from api/openapi.json")
	}
}

func TestOpenAPITopLevel(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	if doc.Info["title"] == "" || doc.Info["version"] == "" {
		t.Fatalf("info lacks title or version: %v", doc.Info)
	}
	for _, k := range []string{"schemas", "responses", "parameters"} {
		if len(doc.Components[k]) == 0 {
			t.Fatalf("components.%s is empty", k)
		}
	}
	if _, ok := doc.Components["schemas"]["Error"]; !ok {
		t.Fatalf("no Error schema")
	}
}

var httpMethods = []string{"get", "put", "post", "patch", "delete", "head", "options"}

// TestOpenAPIMatchesRoutes walks echo's routes and the object action table against the document's paths.
// The object routes are one echo wildcard per method, so a document path ".../objects/{path}/discover"
// stands for the echo route ".../objects/*" plus the action "discover" in objectActions.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	const objects = "/objects/{path}"

	fromDoc := map[string]bool{} // "GET /api/v1/devices/:endpoint"
	docActs := map[string]bool{} // "POST execute"
	for p, item := range doc.Paths {
		for _, m := range httpMethods {
			if _, ok := item[m]; !ok {
				continue
			}
			M := strings.ToUpper(m)
			route := p
			if i := strings.Index(p, objects); i >= 0 {
				route = p[:i] + "/objects/*"
				docActs[M+" "+strings.TrimPrefix(p[i+len(objects):], "/")] = true
			}
			route = regexp.MustCompile(`\{([a-z_]+)\}`).ReplaceAllString(route, ":$1")
			fromDoc[M+" "+route] = true
		}
	}

	env := newTestEnv(t, Config{})
	fromEcho := map[string]bool{}
	for _, r := range env.api.echo.Routes() {
		fromEcho[r.Method+" "+r.Path] = true
	}
	echoActs := map[string]bool{}
	for _, oa := range objectActions {
		echoActs[oa.method+" "+oa.action] = true
	}
	diff(t, "echo route", fromEcho, fromDoc)
	diff(t, "object action", echoActs, docActs)
}

func diff(t *testing.T, what string, served, documented map[string]bool) {
	t.Helper()
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%ss served but not in openapi.json: %v", what, missing)
	}
	if len(extra) > 0 {
		t.Errorf("%ss in openapi.json but not served: %v", what, extra)
	}
	if len(served) == 0 {
		t.Errorf("no %ss at all", what)
	}
}

// TestOpenAPIOperations: every operation has a unique operationId, a summary, a success answer, and every
// error answer it names uses the Error schema; every path parameter in a template is declared.
func TestOpenAPIOperations(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	ids := map[string]string{}
	for p, item := range doc.Paths {
		declared := map[string]bool{}
		collectParams := func(msg json.RawMessage) {
			var ps []map[string]any
			_ = json.Unmarshal(msg, &ps)
			for _, prm := range ps {
				if ref, ok := prm["$ref"].(string); ok {
					prm = resolve(t, raw, ref).(map[string]any)
				}
				if prm["in"] == "path" {
					declared[prm["name"].(string)] = true
				}
			}
		}
		collectParams(item["parameters"])
		for _, m := range httpMethods {
			body, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				OperationID string                     `json:"operationId"`
				Summary     string                     `json:"summary"`
				Parameters  json.RawMessage            `json:"parameters"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(body, &op); err != nil {
				t.Fatalf("%s %s: %v", m, p, err)
			}
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s %s: operationId or summary missing", m, p)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %q used by %s and %s %s", op.OperationID, prev, m, p)
			}
			ids[op.OperationID] = m + " " + p
			collectParams(op.Parameters)
			ok2xx := false
			for code, resp := range op.Responses {
				n, _ := strconv.Atoi(code)
				if n >= 200 && n < 300 {
					ok2xx = true
				}
				if n >= 400 && !strings.Contains(string(resp), "#/components/responses/") {
					t.Errorf("%s %s: %s answer is not a shared error response", m, p, code)
				}
			}
			if !ok2xx {
				t.Errorf("%s %s: no 2xx answer", m, p)
			}
		}
		for _, name := range regexp.MustCompile(`\{([a-z_]+)\}`).FindAllStringSubmatch(p, -1) {
			if !declared[name[1]] {
				t.Errorf("%s: path parameter %q is not declared", p, name[1])
			}
		}
	}
	for name, resp := range doc.Components["responses"] {
		if name != "DeviceResult" && name != "Queued" && !strings.Contains(string(resp), `"#/components/schemas/Error"`) {
			t.Errorf("response %s does not use the Error schema", name)
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	_, raw := loadOpenAPI(t)
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				resolve(t, raw, ref)
				n++
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
	if n == 0 {
		t.Fatalf("no $ref at all")
	}
}

func resolve(t *testing.T, root any, ref string) any {
	t.Helper()
	if !strings.HasPrefix(ref, "#/") {
		t.Fatalf("$ref %q is not local", ref)
	}
	cur := root
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok || m[part] == nil {
			t.Fatalf("$ref %q does not resolve", ref)
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPIErrorCodes: the Error schema lists exactly the code* constants of errors.go.
func TestOpenAPIErrorCodes(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "code") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			declared = append(declared, s)
		}
		return true
	})
	_, raw := loadOpenAPI(t)
	var documented []string
	for _, c := range resolve(t, raw, "#/components/schemas/Error/properties/error/properties/code/enum").([]any) {
		documented = append(documented, c.(string))
	}
	slices.Sort(declared)
	slices.Sort(documented)
	if len(declared) < 10 || !slices.Equal(declared, documented) {
		t.Fatalf("errors.go declares %v\nopenapi.json lists %v", declared, documented)
	}
}

// TestOpenAPIWithoutToken: the document is public, over a real HTTP connection, with no
// Authorization header, a bad token, and on an API that has no tokens configured at all; only
// GET is open, and the route next to it still needs a token.
func TestOpenAPIWithoutToken(t *testing.T) {
	withAuth := newTestEnv(t, Config{})
	noAuth := New(Config{}, &fakeDevices{}, &fakeOperator{}, &fakeObservations{}, testTypes, newFakeSubscriber(), nil)
	for _, tc := range []struct {
		name   string
		h      http.Handler
		header string
	}{
		{"no token", withAuth.api.Handler(), ""},
		{"bad token", withAuth.api.Handler(), bearer("lwota_nope")},
		{"no tokens configured", noAuth.Handler(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			t.Cleanup(srv.Close)
			get := func(method, path string) (int, []byte) {
				t.Helper()
				req, err := http.NewRequest(method, srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				body, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				return res.StatusCode, body
			}
			if status, body := get(http.MethodGet, "/api/v1/openapi.json"); status != http.StatusOK || !bytes.Equal(body, openAPIDoc) {
				t.Fatalf("GET openapi.json: %d, %d bytes; want 200 and the document", status, len(body))
			}
			if status, _ := get(http.MethodPut, "/api/v1/openapi.json"); status != http.StatusUnauthorized {
				t.Errorf("PUT openapi.json: %d, want 401 (only GET is public)", status)
			}
			if status, _ := get(http.MethodGet, "/api/v1/devices"); status != http.StatusUnauthorized {
				t.Errorf("GET devices: %d, want 401", status)
			}
		})
	}
}

// TestOpenAPIDocumentedErrors: the 4xx the document lists for its own route happens.
func TestOpenAPIDocumentedErrors(t *testing.T) {
	env := newTestEnv(t, Config{MaxBodyBytes: 10})
	wantError(t, env.do(t, http.MethodGet, "/api/v1/openapi.json", strings.Repeat("x", 11), "Authorization", ""),
		http.StatusRequestEntityTooLarge, codeBodyTooLarge)
}
