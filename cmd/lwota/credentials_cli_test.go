package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// runCredentials runs `lwota credentials ...` against ts with its admin token.
func runCredentials(ts *testService, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	env := map[string]string{"LWOTA_SERVER": ts.base, "LWOTA_TOKEN": testAdminToken}
	err = credentialsCmd(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), err
}

// TestCredentialsImportCLI: `lwota credentials import` stores a whole CSV or JSON file; a file
// with bad lines stores nothing and prints every bad line; an imported PSK works in a DTLS
// handshake; PUT rotates a key (the old one fails) and DELETE revokes it.
func TestCredentialsImportCLI(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	ts := startService(t, t.TempDir(), "", "--allow-nosec=false")
	key := func(s string) string { return hex.EncodeToString([]byte(s)) }
	good := writeFile(t, "factory.csv", []byte("endpoint,identity,key\n"+
		"imp-1,imp-id-1,"+key("importkey-1")+"\n"+
		"imp-2,imp-id-2,"+key("importkey-2")+"\n"))
	stdout, stderr, err := runCredentials(ts, "import", good)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	var ans map[string]int
	if err := json.Unmarshal([]byte(stdout), &ans); err != nil || ans["imported"] != 2 || ans["created"] != 2 {
		t.Fatalf("import printed %q (%v)", stdout, err)
	}

	// A JSON file without .json: detected by its first character. It rotates imp-1's key.
	rotate := writeFile(t, "rotate.txt", []byte(fmt.Sprintf(`{"credentials": [
  {"endpoint": "imp-1", "psk": {"identity": "imp-id-1", "key": %q}}
]}`, key("rotatedkey-1"))))
	if stdout, stderr, err = runCredentials(ts, "import", rotate); err != nil || !strings.Contains(stdout, `"replaced": 1`) {
		t.Fatalf("rotation import: %v\n%s%s", err, stdout, stderr)
	}

	bad := writeFile(t, "bad.csv", []byte("endpoint,identity,key\n"+
		"imp-3,imp-id-3,"+key("k3")+"\n"+
		"imp-4,imp-id-1,"+key("k4")+"\n"+
		"imp-5,imp-id-5,nothex\n"))
	_, stderr, err = runCredentials(ts, "import", bad)
	if err == nil || !strings.Contains(err.Error(), "422 invalid_request: 2 of 3 credentials are invalid; nothing was stored") {
		t.Fatalf("bad import: %v", err)
	}
	wantLines := "line 3 (imp-4): identity \"imp-id-1\" belongs to endpoint \"imp-1\"\nline 4 (imp-5): key must be hex\n"
	if stderr != wantLines {
		t.Fatalf("stderr %q, want %q", stderr, wantLines)
	}
	if status := ts.apiCall(t, "DELETE", "/api/v1/devices/imp-3/credentials", nil, nil); status != 404 {
		t.Fatalf("imp-3 of the refused file: DELETE status %d, want 404 (never stored)", status)
	}

	// The imported credentials are the DTLS ones: the rotated key works, the old one does not.
	if out := coapsRegister(t, ts, "imp-id-1", "importkey-1", "imp-1"); registeredBy(out) {
		t.Fatalf("the key replaced by the import still registers: %q", out)
	}
	coapsRegister(t, ts, "imp-id-1", "rotatedkey-1", "imp-1")
	var d deviceJSON
	if status := ts.apiCall(t, "GET", "/api/v1/devices/imp-1", nil, &d); status != 200 || !d.Online {
		t.Fatalf("imp-1 with its rotated key: status %d, %+v", status, d)
	}

	// PUT rotates one device's key; DELETE revokes it.
	body := map[string]any{"psk": map[string]string{"identity": "imp-id-2", "key": key("putkey-2")}}
	if status := ts.apiCall(t, "PUT", "/api/v1/devices/imp-2/credentials", body, nil); status != 204 {
		t.Fatalf("PUT rotation: %d", status)
	}
	if out := coapsRegister(t, ts, "imp-id-2", "importkey-2", "imp-2"); registeredBy(out) {
		t.Fatalf("the key replaced by PUT still registers: %q", out)
	}
	coapsRegister(t, ts, "imp-id-2", "putkey-2", "imp-2")
	if status := ts.apiCall(t, "GET", "/api/v1/devices/imp-2", nil, &d); status != 200 || !d.Online {
		t.Fatalf("imp-2 with its PUT key: status %d", status)
	}
	if status := ts.apiCall(t, "DELETE", "/api/v1/devices/imp-2/credentials", nil, nil); status != 204 {
		t.Fatalf("DELETE: %d", status)
	}
	if out := coapsRegister(t, ts, "imp-id-2", "putkey-2", "imp-2"); registeredBy(out) {
		t.Fatalf("a revoked credential still registers: %q", out)
	}
}

func TestCredentialsCLIErrors(t *testing.T) {
	ts := startService(t, t.TempDir(), "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{}, "credentials: no command given"},
		{[]string{"rotate"}, `credentials: unknown command "rotate"`},
		{[]string{"import"}, "credentials import: give exactly one file"},
		{[]string{"import", "/nonexistent/file.csv"}, "no such file"},
		{[]string{"import", "--format", "xml", writeFile(t, "a.csv", []byte("x"))}, `--format "xml"`},
		{[]string{"import", writeFile(t, "empty.csv", []byte("endpoint,identity,key\n"))}, "400 invalid_request: the import holds no credentials"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if _, _, err := runCredentials(ts, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}
