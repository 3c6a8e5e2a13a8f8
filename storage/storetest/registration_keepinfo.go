package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/webhooks"
)

// keeper returns s as a registration.InfoKeeper, or skips the test.
func keeper(t *testing.T, s any) registration.InfoKeeper {
	t.Helper()
	k, ok := s.(registration.InfoKeeper)
	if !ok {
		t.Skip("the store is no registration.InfoKeeper")
	}
	return k
}

// newRegister is what the registry stores for a Register of ep that is not live: a new id and
// parameters, no device attributes of its own.
func newRegister(ep, id string) *registration.Registration {
	r := fullRegistration(ep)
	r.ID, r.Lifetime, r.Binding, r.QueueMode, r.Identity = id, 300, "U", false, ""
	r.RegisteredAt, r.UpdatedAt, r.LastSeen = at(time.Hour), at(time.Hour), at(time.Hour)
	r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType = "", "", "", ""
	return r
}

// testRegistrationKeepingInfo is the contract of registration.InfoKeeper: a save keeps the
// device attributes of the endpoint's stored row, de-registered or not, and sets them on the
// registration; everything else is replaced. An endpoint with no row stores the registration's
// own. A save that fails changes nothing, in the store or in the registration.
func testRegistrationKeepingInfo(t *testing.T, s registration.Store) {
	k := keeper(t, s)
	ctx := context.Background()
	old := fullRegistration("urn:dev:keep/1")
	gone := fullRegistration("urn:dev:keep/2")
	gone.DeregisteredAt = at(0)
	mustSave(t, s, old, gone)
	for _, tc := range []struct {
		name, ep string
		own      [4]string // the registration's attributes before the save
		want     [4]string
	}{
		{"stored row", old.Endpoint, [4]string{}, info(old)},
		{"de-registered row", gone.Endpoint, [4]string{}, info(gone)},
		{"stored row, own values ignored", old.Endpoint, [4]string{"x", "y", "9", "z"}, info(old)},
		{"no row", "urn:dev:keep/new", [4]string{"Own", "M0", "0.1", "sensor"}, [4]string{"Own", "M0", "0.1", "sensor"}},
		{"no row, no values", "urn:dev:keep/empty", [4]string{}, [4]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegister(tc.ep, "n-"+tc.name)
			r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType = tc.own[0], tc.own[1], tc.own[2], tc.own[3]
			if err := k.SaveRegistrationKeepingInfo(ctx, r); err != nil {
				t.Fatal(err)
			}
			if got := info(r); got != tc.want {
				t.Errorf("attributes set on the registration: %q, want %q", got, tc.want)
			}
			want := newRegister(tc.ep, "n-"+tc.name)
			want.Manufacturer, want.Model, want.FirmwareVersion, want.DeviceType = tc.want[0], tc.want[1], tc.want[2], tc.want[3]
			checkRegistration(t, "stored", mustGet(t, s, tc.ep), want)
		})
	}
	t.Run("firmware key kept", func(t *testing.T) {
		// The row's firmware_key follows its firmware version: a comparison still finds it.
		regs, err := s.ListRegistrations(ctx, registration.Filter{FirmwareVersion: "2.4.0", FirmwareOp: ">", EndpointPrefix: "urn:dev:keep/"})
		if err != nil {
			t.Fatal(err)
		}
		if got := endpoints(regs); fmt.Sprint(got) != fmt.Sprint([]string{old.Endpoint, gone.Endpoint}) {
			t.Errorf("firmware > 2.4.0: %v", got)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		r := newRegister(old.Endpoint, "cancelled")
		if err := k.SaveRegistrationKeepingInfo(cancelled(), r); err == nil {
			t.Fatal("saved under a cancelled context")
		}
		if got := info(r); got != [4]string{} {
			t.Errorf("a failed save set %q on the registration", got)
		}
		if got := mustGet(t, s, old.Endpoint); got.ID == "cancelled" {
			t.Errorf("a failed save was stored")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		// Many at once (on PostgreSQL merged into one statement per batch): each gets its own
		// row's attributes.
		const n = 120
		ep := func(i int) string { return fmt.Sprintf("urn:dev:keepc/%03d", i) }
		for i := 0; i < n; i += 2 {
			r := fullRegistration(ep(i))
			r.Model = "model-" + ep(i)
			mustSave(t, s, r)
		}
		regs := make([]*registration.Registration, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			regs[i] = newRegister(ep(i), fmt.Sprintf("c-%d", i))
			wg.Go(func() { errs[i] = k.SaveRegistrationKeepingInfo(ctx, regs[i]) })
		}
		wg.Wait()
		for i, r := range regs {
			want := ""
			if i%2 == 0 {
				want = "model-" + ep(i)
			}
			if errs[i] != nil || r.Model != want {
				t.Errorf("%s: model %q, %v; want %q", ep(i), r.Model, errs[i], want)
			}
			if got := mustGet(t, s, ep(i)); got.Model != want || got.ID != r.ID {
				t.Errorf("%s stored: model %q, id %q; want %q, %q", ep(i), got.Model, got.ID, want, r.ID)
			}
		}
	})
}

func info(r *registration.Registration) [4]string {
	return [4]string{r.Manufacturer, r.Model, r.FirmwareVersion, r.DeviceType}
}

// testWebhookOutboxKeepingInfo checks that the Register event queued by
// SaveRegistrationKeepingInfo carries the same data as the one SaveRegistration queues for the
// registration with the attributes carried over: the same delivery body (webhooks.Encode),
// whatever characters the attributes hold.
func testWebhookOutboxKeepingInfo(t *testing.T, open func(t *testing.T) WebhookStore) {
	for _, tc := range []struct {
		name     string
		attrs    [4]string
		noStored bool
	}{
		{"plain", [4]string{"Acme", "TRK-9", "2.4.1", "tracker"}, false},
		{"characters JSON escapes", [4]string{"Acme \"Öl\" & <Gas>\\", "M\u2028\t1\x01", "1.0/beta\u00e9", "t"}, false},
		{"some empty", [4]string{"", "M1", "", "meter"}, false},
		{"no stored row", [4]string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ep := "urn:dev:whkeep/1"
			keeping, plain := open(t), open(t)
			k := keeper(t, keeping)
			subK := mustSubscribe(t, keeping, true, events.KindRegistration)
			subP := mustSubscribe(t, plain, true, events.KindRegistration)
			if !tc.noStored {
				earlier := fullRegistration(ep)
				earlier.Manufacturer, earlier.Model, earlier.FirmwareVersion, earlier.DeviceType = tc.attrs[0], tc.attrs[1], tc.attrs[2], tc.attrs[3]
				earlier.DeregisteredAt = at(0)
				mustSave(t, keeping, earlier)
			}
			r := newRegister(ep, "again")
			if err := k.SaveRegistrationKeepingInfo(ctx, r); err != nil {
				t.Fatal(err)
			}
			if got := info(r); got != tc.attrs {
				t.Fatalf("attributes carried over: %q, want %q", got, tc.attrs)
			}
			// Before InfoKeeper: the registry read the attributes and saved them with the row.
			carried := newRegister(ep, "again")
			carried.Manufacturer, carried.Model, carried.FirmwareVersion, carried.DeviceType = tc.attrs[0], tc.attrs[1], tc.attrs[2], tc.attrs[3]
			mustSave(t, plain, carried)
			got, want := registeredBody(t, keeping, subK.ID, r.ID), registeredBody(t, plain, subP.ID, r.ID)
			if !bytes.Equal(got, want) {
				t.Errorf("delivery data:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// registeredBody is the data of the request body (webhooks.Encode) of the registered delivery of
// registration id.
func registeredBody(t *testing.T, s webhooks.Store, subID, id string) json.RawMessage {
	t.Helper()
	for _, d := range deliveries(t, s, subID, "") {
		if d.EventType != events.TypeRegistered || !bytes.Contains(d.Payload, []byte(`"registration_id":"`+id+`"`)) {
			continue
		}
		b, err := webhooks.Encode(d)
		if err != nil {
			t.Fatal(err)
		}
		var body webhooks.Body
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		return body.Data
	}
	t.Fatalf("no registered delivery of %s", id)
	return nil
}
