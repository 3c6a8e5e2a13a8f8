package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBodyTooLarge(t *testing.T) {
	big := `{"value":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name    string
		max     int64
		body    string
		chunked bool // no Content-Length: the limit trips while reading
	}{
		{name: "default 1 MiB, Content-Length", body: big},
		{name: "default 1 MiB, chunked", body: big, chunked: true},
		{name: "configured 64 bytes", max: 64, body: `{"records":[{"path":"/3/0/14","value":"` + strings.Repeat("y", 64) + `"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{MaxBodyBytes: tt.max})
			req := httptest.NewRequest(http.MethodPut, "/api/v1/devices/dev-a/objects/3/0/14", strings.NewReader(tt.body))
			if tt.chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(strings.NewReader(tt.body))
			}
			rec := httptest.NewRecorder()
			env.h.ServeHTTP(rec, req)
			wantError(t, response{rec.Code, rec.Header(), rec.Body.Bytes()}, http.StatusRequestEntityTooLarge, codeBodyTooLarge)
			if env.op.callCount() != 0 {
				t.Fatalf("Operator called with an oversized body")
			}
		})
	}
	// Just under the limit passes.
	env := newTestEnv(t, Config{MaxBodyBytes: 64})
	if r := env.do(t, http.MethodPut, "/api/v1/devices/dev-a/objects/3/0/14", `{"value":"ok"}`); r.status != 200 {
		t.Fatalf("small body: status %d: %s", r.status, r.body)
	}
}

func TestUnknownRoutes(t *testing.T) {
	env := newTestEnv(t, Config{})
	wantError(t, env.do(t, http.MethodGet, "/api/v1/nothing", ""), 404, codeNotFound)
	wantError(t, env.do(t, http.MethodGet, "/elsewhere", ""), 404, codeNotFound)
	wantError(t, env.do(t, http.MethodDelete, "/api/v1/devices", ""), 405, codeMethodNotAllowed)
	r := env.do(t, http.MethodHead, "/api/v1/nothing", "")
	if r.status != 404 || len(r.body) != 0 {
		t.Fatalf("HEAD of unknown route: %d %q", r.status, r.body)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.op.panicMsg = "boom"
	r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a/objects/3/0", "")
	wantError(t, r, 500, codeInternal)
	if r.header.Get(HeaderRequestID) == "" {
		t.Fatalf("no request id on a recovered panic")
	}
	line := logLines(t, env)[0]
	if line["level"] != "INFO" || !strings.Contains(line["err"].(string), "panic: boom") {
		t.Fatalf("log line %v, want INFO with the panic", line)
	}
	// The server still answers.
	env.op.panicMsg = ""
	if r := env.do(t, http.MethodGet, "/api/v1/devices/dev-a/objects/3/0", ""); r.status != 200 {
		t.Fatalf("after panic: %d", r.status)
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"kept", "abc-123_x.y:z", true},
		{"made up when absent", "", false},
		{"made up for junk", "bad id\twith spaces", false},
		{"made up when too long", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, Config{})
			var hdr []string
			if tt.sent != "" {
				hdr = []string{HeaderRequestID, tt.sent}
			}
			got := env.do(t, http.MethodGet, "/api/v1/devices/dev-a", "", hdr...).header.Get(HeaderRequestID)
			if tt.keep && got != tt.sent || !tt.keep && (got == tt.sent || len(got) != 24) {
				t.Fatalf("request id %q for %q", got, tt.sent)
			}
			if line := logLines(t, env)[0]; line["request_id"] != got {
				t.Fatalf("log request_id %v, want %q", line["request_id"], got)
			}
		})
	}
}

// TestLogging: one line per request, debug below 500, info with the error at 500; nothing printed elsewhere.
func TestLogging(t *testing.T) {
	env := newTestEnv(t, Config{})
	env.do(t, http.MethodGet, "/api/v1/devices/dev-a", "")
	env.do(t, http.MethodGet, "/api/v1/devices/nobody", "")
	env.devs.err = io.ErrUnexpectedEOF
	env.do(t, http.MethodGet, "/api/v1/devices/dev-a", "")
	lines := logLines(t, env)
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3", len(lines))
	}
	want := []struct {
		level  string
		status float64
		err    bool
	}{{"DEBUG", 200, false}, {"DEBUG", 404, false}, {"INFO", 500, true}}
	for i, w := range want {
		l := lines[i]
		_, hasErr := l["err"]
		if l["level"] != w.level || l["status"] != w.status || hasErr != w.err || l["route"] != "/api/v1/devices/:endpoint" {
			t.Fatalf("line %d: %v, want level %s status %v err %v", i, l, w.level, w.status, w.err)
		}
	}
	if !strings.Contains(lines[2]["err"].(string), "unexpected EOF") {
		t.Fatalf("500 log line lacks the cause: %v", lines[2])
	}
}

func logLines(t *testing.T, env *testEnv) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(env.logs.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatalf("no log lines")
	}
	return out
}
