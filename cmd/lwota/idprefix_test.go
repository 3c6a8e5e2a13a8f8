package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUniquePrefix(t *testing.T) {
	ids := []string{"01jd3q8zk2", "01jd3q9abc", "01je000000", "01je"}
	tests := []struct {
		prefix, want, err string
	}{
		{"01jd3q8", "01jd3q8zk2", ""},
		{"01je", "01je", ""}, // an exact id wins over ids it prefixes
		{"zz", "zz", ""},     // no match: sent as given, the server reports it
		{"01jd3q", "", `"01jd3q" starts the ids of 2 images (01jd3q8zk2, 01jd3q9abc)`}, // ambiguous
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			got, err := uniquePrefix("images", tt.prefix, ids)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
					t.Fatalf("got %q, %v (exit status %d); want usage error %q", got, err, exitCode(err), tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestUpdateJobIDPrefix(t *testing.T) {
	srv := newUpdateServer(t)
	env := map[string]string{"LWOTA_SERVER": srv.URL}
	if _, _, err := runUpdate(t, env, "start", "dev-a", "--image", "img-1"); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runUpdate(t, env, "status", "dev-a", "job-")
	if err != nil || !strings.Contains(stdout, "update        job-1") {
		t.Fatalf("status by prefix: %v\n%s", err, stdout)
	}
	if _, _, err := runUpdate(t, env, "start", "dev-a", "--image", "img-1"); err != nil {
		t.Fatal(err)
	}
	_, _, err = runUpdate(t, env, "cancel", "dev-a", "job-")
	if err == nil || !strings.Contains(err.Error(), `"job-" starts the ids of 2 updates of dev-a`) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if len(srv.u.cancels) != 0 {
		t.Fatalf("an ambiguous prefix cancelled %q", srv.u.cancels)
	}
}

func TestUpdateStartForce(t *testing.T) {
	srv := newUpdateServer(t) // its token is a release token: force is for admins
	_, _, err := runUpdate(t, map[string]string{"LWOTA_SERVER": srv.URL}, "start", "dev-a", "--image", "img-1", "--force")
	if err == nil || !strings.Contains(err.Error(), "403 forbidden") || len(srv.u.starts) != 0 {
		t.Fatalf("force with a release token: %v, starts %+v", err, srv.u.starts)
	}
}

func TestUpdateStartAlreadyUpToDate(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":{"code":"already_up_to_date","message":"device dev-a already runs version 1.4.2; an admin may force a reinstall"}}`))
	}))
	t.Cleanup(hs.Close)
	stdout, _, err := runUpdate(t, map[string]string{"LWOTA_SERVER": hs.URL}, "start", "dev-a", "--image", "01jd3q8zk2m5n6p7q8r9s0t1v2", "--wait")
	if err != nil || stdout != "dev-a: device dev-a already runs version 1.4.2; an admin may force a reinstall\n" {
		t.Fatalf("err %v, stdout %q", err, stdout)
	}
}
