package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/campaigns"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
	"github.com/lwota/lwota/storage/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens dsn and closes the store when t ends.
func open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func stores(s *sqlstore.Store) storetest.Stores {
	return storetest.Stores{Registrations: s, Queue: s, Observations: s, Images: s}
}

// backends are the DSNs of a fresh database per backend.
var backends = []struct {
	name string
	dsn  func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "lwota.db") }},
	{"postgres", pgtest.Start},
}

func TestContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) storetest.Stores { return stores(open(t, b.dsn(t))) })
			t.Run("jobs", func(t *testing.T) {
				storetest.RunJobs(t, func(t *testing.T) fwupdate.Store { return open(t, b.dsn(t)) })
			})
			t.Run("credentials", func(t *testing.T) {
				storetest.RunCredentials(t, func(t *testing.T) credentials.Store { return open(t, b.dsn(t)) })
			})
			t.Run("nosec_touch", func(t *testing.T) {
				storetest.RunNoSecTouch(t, func(t *testing.T) storetest.NoSecTouchStore { return open(t, b.dsn(t)) })
			})
			t.Run("bootstrap", func(t *testing.T) {
				storetest.RunBootstrap(t, func(t *testing.T) storetest.BootstrapStore { return open(t, b.dsn(t)) })
			})
			t.Run("bootstrap-credentials", func(t *testing.T) {
				storetest.RunCredentials(t, func(t *testing.T) credentials.Store { return open(t, b.dsn(t)).BootstrapCredentials() })
			})
			t.Run("cluster_keys", func(t *testing.T) {
				storetest.RunClusterKeys(t, func(t *testing.T) storetest.ClusterKeyStore { return open(t, b.dsn(t)) })
			})
			t.Run("tokens", func(t *testing.T) {
				storetest.RunTokens(t, func(t *testing.T) apitoken.Store { return open(t, b.dsn(t)) })
			})
			t.Run("audit", func(t *testing.T) {
				storetest.RunAudit(t, func(t *testing.T) audit.Store { return open(t, b.dsn(t)) })
			})
			t.Run("campaigns", func(t *testing.T) {
				storetest.RunCampaigns(t, func(t *testing.T) campaigns.Store { return open(t, b.dsn(t)) })
			})
			t.Run("campaign_select", func(t *testing.T) {
				storetest.RunCampaignSelect(t, func(t *testing.T) storetest.CampaignSelectStore { return open(t, b.dsn(t)) })
			})
			t.Run("webhooks", func(t *testing.T) {
				storetest.RunWebhooks(t, func(t *testing.T) storetest.WebhookStore { return open(t, b.dsn(t)) })
			})
		})
	}
}

// TestTimesExact checks that times come back to the nanosecond, in UTC, beyond the microsecond the
// contract asks for.
func TestTimesExact(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.dsn(t))
			ctx := context.Background()
			when := time.Date(2031, 2, 3, 4, 5, 6, 789123457, time.FixedZone("X", -7*3600))
			r := &registration.Registration{Endpoint: "ns", RegisteredAt: when, UpdatedAt: when.Add(1),
				LastSeen: when.Add(2), DeregisteredAt: when.Add(3)}
			if err := s.SaveRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetRegistration(ctx, "ns")
			if err != nil {
				t.Fatal(err)
			}
			for i, pair := range [][2]time.Time{{got.RegisteredAt, r.RegisteredAt}, {got.UpdatedAt, r.UpdatedAt},
				{got.LastSeen, r.LastSeen}, {got.DeregisteredAt, r.DeregisteredAt}} {
				if !pair[0].Equal(pair[1]) || pair[0].Location() != time.UTC {
					t.Errorf("time %d: got %s, want %s in UTC", i, pair[0].Format(time.RFC3339Nano), pair[1].UTC().Format(time.RFC3339Nano))
				}
			}
			// Times int64 nanoseconds cannot hold are refused, not mangled.
			r.LastSeen = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := s.SaveRegistration(ctx, r); err == nil || !strings.Contains(err.Error(), "range") {
				t.Errorf("SaveRegistration with a time in 2300: err = %v, want a range error", err)
			}
		})
	}
}

// TestReopenSQLite checks that a reopened file keeps its data and that migrating again changes
// nothing.
func TestReopenSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "lwota.db")
	s, err := sqlstore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRegistration(ctx, &registration.Registration{Endpoint: "kept", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	schema := sqlstore.SchemaOf(t, path)

	s = open(t, "sqlite:"+path)
	got, err := s.GetRegistration(ctx, "kept")
	if err != nil || got.ID != "1" {
		t.Fatalf("GetRegistration after reopen = %+v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if again := sqlstore.SchemaOf(t, path); again != schema {
		t.Errorf("schema or migration history changed on reopen:\n%s\n---\n%s", schema, again)
	}
}

func TestReopenPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s, err := sqlstore.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRegistration(ctx, &registration.Registration{Endpoint: "kept", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dsn)
	if got, err := s.GetRegistration(ctx, "kept"); err != nil || got.ID != "1" {
		t.Fatalf("GetRegistration after reopen = %+v, %v", got, err)
	}
}

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		dsn     string
		wantErr string // "" for success
	}{
		{"plain path, parents created", filepath.Join(dir, "a", "b", "lwota.db"), ""},
		{"sqlite prefix", "sqlite:" + filepath.Join(dir, "p.db"), ""},
		{"sqlite URL form", "sqlite://" + filepath.Join(dir, "u.db"), ""},
		{"synchronous full", "sqlite:" + filepath.Join(dir, "f.db") + "?synchronous=full", ""},
		{"empty", "", "empty DSN"},
		{"memory", ":memory:", "plain file path"},
		{"unknown parameter", filepath.Join(dir, "x.db") + "?cache=shared", "unsupported parameter"},
		{"bad synchronous", filepath.Join(dir, "x.db") + "?synchronous=off", "unsupported parameter"},
		{"unknown scheme", "mysql://root@localhost/lwota", "unsupported DSN scheme"},
		{"postgres unreachable", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "open postgres 127.0.0.1:1/none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlstore.Open(context.Background(), tc.dsn, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Open(%q): %v", tc.dsn, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error containing %q", tc.dsn, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "sqlstore: ") {
				t.Errorf("Open(%q): err = %v, want %q", tc.dsn, err, tc.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b", "lwota.db")); err != nil {
		t.Errorf("the database file was not created: %v", err)
	}
}

// TestClose checks that Close lets queued writes finish: every save that returned nil is in the
// file afterwards, and every other one says ErrClosed.
func TestClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lwota.db")
	s, err := sqlstore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	results := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- s.SaveRegistration(ctx, &registration.Registration{Endpoint: fmt.Sprintf("ep-%03d", i)})
		}()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	saved := 0
	for err := range results {
		switch {
		case err == nil:
			saved++
		case !errors.Is(err, sqlstore.ErrClosed):
			t.Errorf("SaveRegistration during Close: %v", err)
		}
	}
	if err := s.SaveRegistration(ctx, &registration.Registration{Endpoint: "after"}); !errors.Is(err, sqlstore.ErrClosed) {
		t.Errorf("SaveRegistration after Close: err = %v, want ErrClosed", err)
	}
	s = open(t, path)
	all, err := s.LoadRegistrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != saved {
		t.Errorf("%d registrations in the file, %d saves returned nil", len(all), saved)
	}
}

// TestTouchRegistration checks that a touch stores the times, the expiry and the address and
// nothing else, and that a touch of another id (a replaced registration) is ErrNotFound and
// changes nothing.
func TestTouchRegistration(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, b.dsn(t))
			r := benchRegistration("urn:imei:1")
			r.Manufacturer = "acme"
			if err := s.SaveRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
			touched := *r
			touched.UpdatedAt = r.UpdatedAt.Add(time.Minute)
			touched.LastSeen = touched.UpdatedAt
			touched.Addr.AddrPort = netip.MustParseAddrPort("198.51.100.7:4000")
			touched.Model = "not stored by a touch"
			if err := s.TouchRegistration(ctx, &touched); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetRegistration(ctx, r.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if !got.UpdatedAt.Equal(touched.UpdatedAt) || !got.LastSeen.Equal(touched.LastSeen) || got.Addr != touched.Addr ||
				!got.ExpiresAt().Equal(touched.ExpiresAt()) || got.Model != "" || got.Manufacturer != "acme" || len(got.Objects) != len(r.Objects) {
				t.Errorf("after the touch = %+v", got)
			}
			yes := true
			online, err := s.ListRegistrations(ctx, registration.Filter{Online: &yes, Now: r.UpdatedAt.Add(time.Duration(r.Lifetime)*time.Second + 30*time.Second)})
			if err != nil || len(online) != 1 {
				t.Errorf("online just past the first expiry: %d, %v; want the touched registration", len(online), err)
			}
			other := touched
			other.ID = "another-id"
			other.UpdatedAt = touched.UpdatedAt.Add(time.Hour)
			if err := s.TouchRegistration(ctx, &other); !errors.Is(err, registration.ErrNotFound) {
				t.Errorf("touch of another id = %v, want ErrNotFound", err)
			}
			if got, _ := s.GetRegistration(ctx, r.Endpoint); !got.UpdatedAt.Equal(touched.UpdatedAt) {
				t.Errorf("a refused touch changed updated_at to %v", got.UpdatedAt)
			}
		})
	}
}

// TestSaveDeviceInfo checks that a device-info save stores the four attributes and the
// firmware key (the device list's version comparison finds the row) and nothing else: the
// times, lifetime, address and object list of the registration it is given are not stored. A
// save for another id (a replaced registration) is ErrNotFound and changes nothing.
func TestSaveDeviceInfo(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := open(t, b.dsn(t))
			r := benchRegistration("urn:imei:1")
			if err := s.SaveRegistration(ctx, r); err != nil {
				t.Fatal(err)
			}
			info := *r
			info.Manufacturer, info.Model, info.FirmwareVersion, info.DeviceType = "acme", "m1", "2.1.0", "meter"
			info.UpdatedAt = r.UpdatedAt.Add(time.Hour)
			info.Lifetime = r.Lifetime + 1
			info.Addr.AddrPort = netip.MustParseAddrPort("198.51.100.7:4000")
			info.Objects = nil
			if err := s.SaveDeviceInfo(ctx, &info); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetRegistration(ctx, r.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if got.Manufacturer != "acme" || got.Model != "m1" || got.FirmwareVersion != "2.1.0" || got.DeviceType != "meter" {
				t.Errorf("device info after the save = %q %q %q %q", got.Manufacturer, got.Model, got.FirmwareVersion, got.DeviceType)
			}
			if !got.UpdatedAt.Equal(r.UpdatedAt) || got.Lifetime != r.Lifetime || got.Addr != r.Addr || len(got.Objects) != len(r.Objects) || got.ID != r.ID {
				t.Errorf("a device-info save changed other columns: %+v, want those of %+v", got, r)
			}
			newer, err := s.ListRegistrations(ctx, registration.Filter{FirmwareOp: ">", FirmwareVersion: "2.0"})
			if err != nil || len(newer) != 1 {
				t.Errorf("registrations with firmware > 2.0: %d, %v; want the saved one (its firmware key)", len(newer), err)
			}
			other := info
			other.ID = "another-id"
			other.Model = "not stored"
			if err := s.SaveDeviceInfo(ctx, &other); !errors.Is(err, registration.ErrNotFound) {
				t.Errorf("device-info save of another id = %v, want ErrNotFound", err)
			}
			if got, _ := s.GetRegistration(ctx, r.Endpoint); got.Model != "m1" {
				t.Errorf("a refused device-info save stored model %q", got.Model)
			}
		})
	}
}
