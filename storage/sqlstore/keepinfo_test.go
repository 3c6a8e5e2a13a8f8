package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
	"github.com/lwota/lwota/storage/pgtest"
)

// TestKeepInfoRoundTrips checks the PostgreSQL shape of SaveRegistrationKeepingInfo, the
// Register of an endpoint that is not live: no lookup before it (StoredInfo's group read was a
// round trip of its own), and a batch of them, merged or a single one, commits in one round
// trip like any batch of Registers, each write learning its own row's attributes, and each
// webhook event carrying them. The cluster node's owner row goes with it.
func TestKeepInfoRoundTrips(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.Start(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.OwnDevices(7, time.Minute)
	base := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	sub, err := webhooks.NewSubscription("https://hooks.example.com/x", []string{events.KindRegistration}, "", true, "test", base)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	reg := func(ep, id string) *registration.Registration {
		return &registration.Registration{ID: id, Endpoint: ep, Version: "1.1", Lifetime: 60, Binding: "U",
			RegisteredAt: base, UpdatedAt: base, LastSeen: base}
	}
	model := func(ep string) string { return "model of " + ep }
	stored := map[string]bool{"k-0": true, "k-2": true, "alone": true} // k-1 and k-3 have no row yet
	for ep := range stored {
		r := reg(ep, "old-"+ep)
		r.Manufacturer, r.Model, r.FirmwareVersion = "Acme", model(ep), "1.0"
		if err := s.SaveRegistration(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(t *testing.T, ep string) (*write, *[4]string) {
		stmts, err := s.keepStmts(reg(ep, "new-"+ep))
		if err != nil {
			t.Fatal(err)
		}
		var info [4]string
		return &write{ctx: ctx, key: ep, stmts: stmts, done: make(chan error, 1),
			into: []*string{&info[0], &info[1], &info[2], &info[3]}}, &info
	}
	for _, tc := range []struct {
		name string
		eps  []string
	}{
		{"merged", []string{"k-0", "k-1", "k-2", "k-3"}},
		{"alone", []string{"alone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var batch []*write
			var infos []*[4]string
			for _, ep := range tc.eps {
				w, info := keep(t, ep)
				batch = append(batch, w)
				infos = append(infos, info)
			}
			c := newCommitter(s.writeDB, nil)
			c.unbounded, c.pipelined, c.merge = s.dialect.unboundedTx, s.dialect.pipelined, s.w.merge
			trips := s.w.roundTrips.Load()
			c.trips = &s.w.roundTrips
			c.commit(batch)
			for i, op := range batch {
				if err := <-op.done; err != nil {
					t.Fatalf("%s: %v", op.key, err)
				}
				want := [4]string{}
				if stored[op.key] {
					want = [4]string{"Acme", model(op.key), "1.0", ""}
				}
				if *infos[i] != want {
					t.Errorf("%s: kept %q, want %q", op.key, *infos[i], want)
				}
				got, err := s.GetRegistration(ctx, op.key)
				if err != nil || got.ID != "new-"+op.key || got.Model != want[1] {
					t.Errorf("%s stored: %+v, %v", op.key, got, err)
				}
				if o, err := s.DeviceOwner(ctx, op.key); err != nil || o.NodeID != 7 {
					t.Errorf("%s: owner %+v, %v", op.key, o, err)
				}
			}
			if got := s.w.roundTrips.Load() - trips; got != 1 {
				t.Errorf("batch of %d took %d round trips, want 1", len(batch), got)
			}
			ds, err := s.ListDeliveries(ctx, webhooks.DeliveryFilter{SubscriptionID: sub.ID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for i, ep := range tc.eps {
				found := false
				for _, d := range ds {
					var ev registrationEvent
					if err := json.Unmarshal(d.Payload, &ev); err != nil {
						t.Fatalf("payload %s: %v", d.Payload, err)
					}
					if ev.RegistrationID != "new-"+ep {
						continue
					}
					found = true
					if got := [3]string{ev.Manufacturer, ev.Model, ev.FirmwareVersion}; got != [3]string(infos[i][:3]) {
						t.Errorf("%s: event carries %q, want %q", ep, got, infos[i][:3])
					}
				}
				if !found {
					t.Errorf("%s: no registered delivery", ep)
				}
			}
		})
	}
	t.Run("no lookup", func(t *testing.T) {
		lookups := s.storedInfo.stmts()
		for i := range 3 {
			if err := s.SaveRegistrationKeepingInfo(ctx, reg(fmt.Sprintf("k-%d", i), fmt.Sprintf("again-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.storedInfo.stmts() - lookups; got != 0 {
			t.Errorf("%d StoredInfo lookups for 3 Registers, want none", got)
		}
	})
}

// TestKeepInfoNeedsPipeline checks that a write returning values (writer.doInto) fails on a
// commit that cannot read them back (SQLite's transactions) instead of answering without them.
func TestKeepInfoNeedsPipeline(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir()+"/lwota.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	args, err := registrationArgs(&registration.Registration{ID: "i", Endpoint: "e"})
	if err != nil {
		t.Fatal(err)
	}
	var v string
	err = s.w.doInto(ctx, "e", []*string{&v}, stmt{s.q.saveRegistration, args})
	if err == nil {
		t.Fatal("a write returning values committed on SQLite")
	}
	if _, err := s.GetRegistration(ctx, "e"); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("the refused write was stored: %v", err)
	}
}
