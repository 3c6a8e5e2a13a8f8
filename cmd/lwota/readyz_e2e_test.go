package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/pgtest"
)

type readyAnswer struct {
	status int
	Status string            `json:"status"`
	Failed map[string]string `json:"failed"`
}

func getReady(t *testing.T, ts *testService) readyAnswer {
	t.Helper()
	resp, err := http.Get(ts.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := readyAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("/readyz body %s: %v", data, err)
	}
	return a
}

// waitReady polls /readyz until it answers status with failedCheck among the failed checks
// (none when failedCheck is empty).
func waitReady(t *testing.T, ts *testService, status int, failedCheck string) {
	t.Helper()
	var last readyAnswer
	waitFor(t, "/readyz "+http.StatusText(status)+" "+failedCheck, 60*time.Second, func() bool {
		last = getReady(t, ts)
		if last.status != status {
			return false
		}
		_, named := last.Failed[failedCheck]
		return failedCheck == "" && len(last.Failed) == 0 || named
	})
	t.Logf("/readyz %d %+v", last.status, last)
}

// TestReadyzFollowsStorage: /readyz is 503 naming the failing check while PostgreSQL is down or
// the image store cannot be written, and 200 again once they recover.
func TestReadyzFollowsStorage(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	pg := pgtest.Own(t)
	dataDir := t.TempDir()
	ts := startService(t, dataDir, pg.DSN)
	waitReady(t, ts, http.StatusOK, "")

	pg.Stop(t)
	waitReady(t, ts, http.StatusServiceUnavailable, "database")
	pg.Restart(t)
	waitReady(t, ts, http.StatusOK, "")

	// The image directory turns into a file: no upload could be stored (as with a full disk).
	images := filepath.Join(dataDir, "images")
	if err := os.Rename(images, images+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(images, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ts, http.StatusServiceUnavailable, "blob_store")
	if err := os.Remove(images); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(images+".away", images); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ts, http.StatusOK, "")
}
