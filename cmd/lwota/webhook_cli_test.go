package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// runWebhookCLI runs `lwota webhook args...` against ts and returns stdout and the error.
func runWebhookCLI(t *testing.T, ts *testService, args ...string) (string, error) {
	t.Helper()
	env := map[string]string{"LWOTA_SERVER": ts.base, "LWOTA_TOKEN": testAdminToken}
	var out, errOut bytes.Buffer
	_, err := execute(context.Background(), append([]string{"webhook"}, args...), &out, &errOut, func(k string) string { return env[k] })
	return out.String(), err
}

func TestWebhookCLI(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	ts := startService(t, t.TempDir(), "", "--webhook-max-attempts", "1")

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"create", "--kind", "update_job"}, "--url and --kind are required"},
		{"bad kind", []string{"create", "--url", down.URL, "--kind", "update_job,notification"}, "invalid_webhook"},
		{"bad scheme", []string{"create", "--url", "ftp://x/y", "--kind", "campaign"}, "http:// or https://"},
		{"unknown id", []string{"deliveries", "wh_nope"}, "not_found"},
		{"contradiction", []string{"deliveries", "wh_x", "--dead", "--state", "pending"}, "contradict"},
		{"retry needs two", []string{"retry", "wh_x"}, "the subscription id and the delivery id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runWebhookCLI(t, ts, tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	if out, err := runWebhookCLI(t, ts, "list", "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after refused creations: %q, %v", out, err)
	}

	out, err := runWebhookCLI(t, ts, "create", "--url", down.URL, "--kind", "registration", "--kind", "campaign")
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		ID     string   `json:"id"`
		Secret string   `json:"secret"`
		Kinds  []string `json:"kinds"`
	}
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.Secret == "" || strings.Join(w.Kinds, ",") != "campaign,registration" {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	if out, err := runWebhookCLI(t, ts, "list"); err != nil || !strings.Contains(out, w.ID) || strings.Contains(out, w.Secret) {
		t.Fatalf("list = %q, %v", out, err)
	}
	startFleet(t, ts, "cli-hook", 1, fleetConfig("pull")) // its Register fails once: a dead letter
	var dead []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	waitFor(t, "a dead letter", time.Minute, func() bool {
		out, err := runWebhookCLI(t, ts, "deliveries", w.ID, "--dead", "-o", "json")
		return err == nil && json.Unmarshal([]byte(out), &dead) == nil && len(dead) == 1
	})
	out, err = runWebhookCLI(t, ts, "retry", w.ID, dead[0].ID, "-o", "json")
	if err != nil || !strings.Contains(out, `"state": "pending"`) {
		t.Fatalf("retry printed %q, %v", out, err)
	}
	if _, err := runWebhookCLI(t, ts, "delete", w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := runWebhookCLI(t, ts, "show", w.ID); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("show after delete: %v", err)
	}
}
