package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// TestAcknowledgedRegistrationsSurviveSIGKILL runs lwota serve as a process of its own,
// registers devices and updates them (each answered 2.01 / 2.04), kills lwota with SIGKILL the
// moment the last answer arrives, and finds every acknowledged registration, with its Update,
// in the database: group commit and touches acknowledge nothing before it is stored.
func TestAcknowledgedRegistrationsSurviveSIGKILL(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range []struct {
		name string
		dsn  func(t *testing.T, dir string) string
	}{
		{"sqlite", func(t *testing.T, dir string) string { return filepath.Join(dir, "lwota.db") }},
		{"postgres", func(t *testing.T, _ string) string { return pgtest.Start(t) }},
	} {
		t.Run(be.name, func(t *testing.T) {
			dir := t.TempDir()
			dsn := be.dsn(t, dir)
			addr := freeUDPBelowEphemeral(t) // free until the process binds it, and again after it is killed
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, self, "serve", "--coap-addr", addr, "--coaps-addr", "", "--allow-nosec",
				"--http-addr", "127.0.0.1:0", "--data-dir", dir, "--database", dsn, "--log-level", "error", "--read-device-info=false")
			cmd.Env = append(os.Environ(), readmeCLIEnv+"=1")
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			killed := false
			kill := func() {
				if !killed {
					killed = true
					_ = cmd.Process.Signal(syscall.SIGKILL)
					_ = cmd.Wait()
				}
			}
			defer kill()

			// The first Register is retransmitted until lwota listens.
			probe, err := lwm2mtest.NewRegLoad(addr, 1, func(int) string { return "probe" })
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()
			for {
				if _, err := probe.Register(ctx, 1, 300); err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatalf("lwota never answered: %v", err)
				}
			}
			const n = 300
			fleet, err := lwm2mtest.NewRegLoad(addr, n, func(i int) string { return fmt.Sprintf("kill-%04d", i) })
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.Close()
			if got, err := fleet.Register(ctx, 64, 300); err != nil || got != n {
				t.Fatalf("registered %d of %d: %v", got, n, err)
			}
			updatesFrom := time.Now()
			if got, err := fleet.Update(ctx, 64, 1); err != nil || got != n {
				t.Fatalf("updated %d of %d: %v", got, n, err)
			}
			kill()

			st, err := sqlstore.Open(context.Background(), dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			regs, err := st.ListRegistrations(context.Background(), registration.Filter{EndpointPrefix: "kill-", Limit: 2 * n})
			if err != nil {
				t.Fatal(err)
			}
			if len(regs) != n {
				t.Fatalf("after SIGKILL the database holds %d of the %d acknowledged registrations", len(regs), n)
			}
			stale := 0
			for _, r := range regs {
				if r.UpdatedAt.Before(updatesFrom) {
					stale++
				}
			}
			if stale > 0 {
				t.Errorf("after SIGKILL %d of the %d acknowledged Updates are missing", stale, n)
			}
		})
	}
}
