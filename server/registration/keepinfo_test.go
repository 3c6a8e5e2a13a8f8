package registration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/pgtest"
	"github.com/lwota/lwota/storage/sqlstore"
)

// readCountingStore counts the reads of a stored registration a Register might make.
type readCountingStore struct {
	*sqlstore.Store
	reads atomic.Int64
}

func (s *readCountingStore) StoredInfo(ctx context.Context, ep string) (*registration.Registration, error) {
	s.reads.Add(1)
	return s.Store.StoredInfo(ctx, ep)
}

func (s *readCountingStore) GetRegistration(ctx context.Context, ep string) (*registration.Registration, error) {
	s.reads.Add(1)
	return s.Store.GetRegistration(ctx, ep)
}

// registeredListener keeps what Registered was called with.
type registeredListener struct {
	mu       sync.Mutex
	reg, old *registration.Registration
}

func (l *registeredListener) Registered(r, previous *registration.Registration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reg, l.old = r, previous
}
func (l *registeredListener) Updated(*registration.Registration)            {}
func (l *registeredListener) Deregistered(*registration.Registration, bool) {}

// A Register of a device that is not live (lwota restarted, or it lapsed) carries over the
// device attributes stored with its earlier registration, on SQLite and PostgreSQL, through a
// store that keeps them in its save (registration.InfoKeeper): the registry reads nothing before
// the save (on PostgreSQL that read was a round trip of its own), and the registration in
// memory, the one the listener hears about (the event bus) and the webhook event carry them as
// before.
func TestRegisterKeepsStoredInfoWithoutReading(t *testing.T) {
	for _, be := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "reg.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
	} {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, be.dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
			sub, err := webhooks.NewSubscription("https://hooks.example.com/x", []string{events.KindRegistration}, "", true, "test", now)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CreateSubscription(ctx, sub); err != nil {
				t.Fatal(err)
			}
			earlier := &registration.Registration{ID: "earlier", Endpoint: "dev", Version: "1.1", Lifetime: 60, Binding: "U",
				RegisteredAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour), LastSeen: now.Add(-time.Hour),
				Manufacturer: "Acme", Model: "M1", FirmwareVersion: "1.0.0", DeviceType: "meter"}
			if err := st.SaveRegistration(ctx, earlier); err != nil {
				t.Fatal(err)
			}
			want := [4]string{"Acme", "M1", "1.0.0", "meter"}
			cs := &readCountingStore{Store: st}
			l := &registeredListener{}
			reg := registration.New(cs, l, registration.DefaultConfig(), nil, nil, func() time.Time { return now })
			resp := reg.ServeCoAP(ctx, peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev", "lt=60"))
			if resp.Code != transport.Created {
				t.Fatalf("register answered %s", resp.Code)
			}
			if n := cs.reads.Load(); n != 0 {
				t.Errorf("the Register read the stored registration %d times before saving, want none", n)
			}
			live := mustLive(t, reg, "dev")
			if got := info(live); got != want {
				t.Errorf("live: %q, want %q", got, want)
			}
			l.mu.Lock()
			heard, old := l.reg, l.old
			l.mu.Unlock()
			if heard == nil || info(heard) != want || heard.ID != live.ID || old != nil {
				t.Errorf("listener heard %+v (previous %+v), want the new registration with %q", heard, old, want)
			}
			stored, err := st.GetRegistration(ctx, "dev")
			if err != nil || stored.ID != live.ID || info(stored) != want {
				t.Errorf("stored: %+v, %v", stored, err)
			}
			ds, err := st.ListDeliveries(ctx, webhooks.DeliveryFilter{SubscriptionID: sub.ID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, d := range ds {
				var ev map[string]any
				if err := json.Unmarshal(d.Payload, &ev); err != nil {
					t.Fatalf("payload %s: %v", d.Payload, err)
				}
				if ev["registration_id"] != live.ID {
					continue
				}
				found = true
				if got := [3]any{ev["manufacturer"], ev["model"], ev["firmware_version"]}; got != [3]any{want[0], want[1], want[2]} {
					t.Errorf("webhook event carries %q, want %q", got, want[:3])
				}
			}
			if !found {
				t.Errorf("no webhook event for the Register; deliveries %d", len(ds))
			}
		})
	}
}
