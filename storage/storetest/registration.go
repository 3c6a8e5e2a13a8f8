package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// RunRegistrations is the contract of registration.Store.
func RunRegistrations(t *testing.T, open func(t *testing.T) registration.Store) {
	parallel(t, "RoundTrip", open, testRegistrationRoundTrip)
	parallel(t, "Minimal", open, testRegistrationMinimal)
	parallel(t, "UpsertReplaces", open, testRegistrationUpsert)
	parallel(t, "NotFound", open, testRegistrationNotFound)
	parallel(t, "Deregistered", open, testRegistrationDeregistered)
	parallel(t, "Filter", open, testRegistrationFilter)
	parallel(t, "Concurrent", open, testRegistrationConcurrent)
	parallel(t, "Cancelled", open, testRegistrationCancelled)
	parallel(t, "Labels", open, testLabels)
	parallel(t, "LabelLimits", open, testLabelLimits)
	parallel(t, "FirmwareCompare", open, testFirmwareCompare)
	parallel(t, "Sort", open, testRegistrationSort)
	parallel(t, "Count", open, testRegistrationCount)
	parallel(t, "FleetCounts", open, testFleetCounts)
	parallel(t, "KeepingInfo", open, testRegistrationKeepingInfo)
}

// fullRegistration sets every stored field, Addr and the device info included (Labels are not
// stored with the registration).
func fullRegistration(ep string) *registration.Registration {
	return &registration.Registration{
		ID:             "r" + ep,
		Endpoint:       ep,
		Version:        "1.1",
		Lifetime:       86400,
		Binding:        "UQ",
		QueueMode:      true,
		SMSNumber:      "+15550100",
		RootPath:       "/lwm2m",
		ContentFormats: []uint16{uint16(lwm2m.FormatTLV), uint16(lwm2m.FormatSenMLCBOR)},
		Objects: []registration.ObjectLink{
			{Path: lwm2m.NewPath(1, 0)},
			{Path: lwm2m.NewPath(3, 0)},
			{Path: lwm2m.NewPath(5), Version: "1.1"},
			{Path: lwm2m.NewPath(5, 0)},
			{Path: lwm2m.NewPath(33000)},
		},
		Addr: transport.Addr{
			Network:  transport.DTLS,
			AddrPort: netip.MustParseAddrPort("[2001:db8::17]:5684"),
		},
		Identity:        "psk-" + ep,
		RegisteredAt:    at(-time.Hour),
		UpdatedAt:       at(-time.Minute),
		LastSeen:        at(-time.Second),
		FirmwareVersion: "2.4.1+build.7",
		Manufacturer:    "Acme Öl & Gas",
		Model:           "TRK-9 'rev b'",
		DeviceType:      "tracker",
	}
}

// normRegistration makes r comparable with reflect.DeepEqual: times normalized by utc.
func normRegistration(r *registration.Registration) *registration.Registration {
	if r == nil {
		return nil
	}
	c := *r
	c.RegisteredAt = utc(c.RegisteredAt)
	c.UpdatedAt = utc(c.UpdatedAt)
	c.LastSeen = utc(c.LastSeen)
	c.DeregisteredAt = utc(c.DeregisteredAt)
	return &c
}

func checkRegistration(t *testing.T, what string, got, want *registration.Registration) {
	t.Helper()
	if g, w := normRegistration(got), normRegistration(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func mustSave(t *testing.T, s registration.Store, regs ...*registration.Registration) {
	t.Helper()
	for _, r := range regs {
		if err := s.SaveRegistration(context.Background(), r); err != nil {
			t.Fatalf("SaveRegistration(%s): %v", r.Endpoint, err)
		}
	}
}

func mustGet(t *testing.T, s registration.Store, ep string) *registration.Registration {
	t.Helper()
	r, err := s.GetRegistration(context.Background(), ep)
	if err != nil {
		t.Fatalf("GetRegistration(%s): %v", ep, err)
	}
	return r
}

func endpoints(regs []*registration.Registration) []string {
	out := make([]string, 0, len(regs))
	for _, r := range regs {
		out = append(out, r.Endpoint)
	}
	return out
}

func testRegistrationRoundTrip(t *testing.T, s registration.Store) {
	want := fullRegistration("urn:imei:350000000000001")
	mustSave(t, s, want)
	checkRegistration(t, "GetRegistration", mustGet(t, s, want.Endpoint), want)

	all, err := s.LoadRegistrations(context.Background())
	if err != nil {
		t.Fatalf("LoadRegistrations: %v", err)
	}
	if len(all) != 1 {
		t.Fatalf("LoadRegistrations returned %d registrations, want 1", len(all))
	}
	checkRegistration(t, "LoadRegistrations", all[0], want)

	list, err := s.ListRegistrations(context.Background(), registration.Filter{})
	if err != nil {
		t.Fatalf("ListRegistrations: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("ListRegistrations returned %d registrations, want 1", len(list))
	}
	checkRegistration(t, "ListRegistrations", list[0], want)

	// The derived answers agree after the round trip.
	got := mustGet(t, s, want.Endpoint)
	if !got.ExpiresAt().Equal(want.ExpiresAt()) || !got.HasObject(5) || got.ObjectVersion(5) != "1.1" ||
		!got.SupportsFormat(lwm2m.FormatSenMLCBOR) || got.Addr != want.Addr {
		t.Errorf("derived fields differ after the round trip: %+v", got)
	}
}

// testRegistrationMinimal saves a registration with nothing but an endpoint: zero times, nil
// slices, no address come back as they went.
func testRegistrationMinimal(t *testing.T, s registration.Store) {
	for _, want := range []*registration.Registration{
		{Endpoint: "bare"},
		{Endpoint: "empty-lists", ContentFormats: []uint16{}, Objects: []registration.ObjectLink{}},
		{Endpoint: "udp4", Addr: transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort("192.0.2.1:56830")}},
		{Endpoint: "deregistered-only", DeregisteredAt: at(0)},
	} {
		mustSave(t, s, want)
		checkRegistration(t, want.Endpoint, mustGet(t, s, want.Endpoint), want)
	}
}

func testRegistrationUpsert(t *testing.T, s registration.Store) {
	first := fullRegistration("dev")
	mustSave(t, s, first)

	second := &registration.Registration{
		ID:             "rd2",
		Endpoint:       "dev",
		Version:        "1.2",
		Lifetime:       300,
		Binding:        "U",
		RootPath:       "/",
		ContentFormats: []uint16{uint16(lwm2m.FormatSenMLJSON)},
		Objects:        []registration.ObjectLink{{Path: lwm2m.NewPath(3, 0)}},
		Addr: transport.Addr{
			Network:  transport.UDP,
			AddrPort: netip.MustParseAddrPort("198.51.100.7:40000"),
		},
		RegisteredAt:    at(0),
		UpdatedAt:       at(time.Second),
		LastSeen:        at(2 * time.Second),
		FirmwareVersion: "2.5.0",
		Model:           "TRK-10",
	}
	mustSave(t, s, second)
	checkRegistration(t, "after the second save", mustGet(t, s, "dev"), second)

	list, err := s.ListRegistrations(context.Background(), registration.Filter{})
	if err != nil {
		t.Fatalf("ListRegistrations: %v", err)
	}
	if got := endpoints(list); !slices.Equal(got, []string{"dev"}) {
		t.Errorf("ListRegistrations = %q, want one row for dev", got)
	}
	// The replaced object list no longer matches object 5; the new firmware does.
	five := uint16(5)
	if list, err := s.ListRegistrations(context.Background(), registration.Filter{ObjectID: &five}); err != nil || len(list) != 0 {
		t.Errorf("ListRegistrations(object 5) = %q, %v; want none", endpoints(list), err)
	}
	if list, err := s.ListRegistrations(context.Background(), registration.Filter{FirmwareVersion: "2.5.0"}); err != nil || len(list) != 1 {
		t.Errorf("ListRegistrations(firmware 2.5.0) = %q, %v; want dev", endpoints(list), err)
	}
	// The device info of the first save is gone with it.
	for _, f := range []registration.Filter{{Model: "TRK-9 'rev b'"}, {Manufacturer: "Acme Öl & Gas"}, {DeviceType: "tracker"}} {
		if list, err := s.ListRegistrations(context.Background(), f); err != nil || len(list) != 0 {
			t.Errorf("ListRegistrations(%+v) = %q, %v; want none", f, endpoints(list), err)
		}
	}
	if list, err := s.ListRegistrations(context.Background(), registration.Filter{Model: "TRK-10"}); err != nil || len(list) != 1 {
		t.Errorf("ListRegistrations(model TRK-10) = %q, %v; want dev", endpoints(list), err)
	}
}

func testRegistrationNotFound(t *testing.T, s registration.Store) {
	_, err := s.GetRegistration(context.Background(), "nobody")
	if !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("GetRegistration(nobody): err = %v, want registration.ErrNotFound", err)
	}
	all, err := s.LoadRegistrations(context.Background())
	if err != nil || len(all) != 0 {
		t.Errorf("LoadRegistrations on an empty store = %d rows, %v; want none", len(all), err)
	}
}

func testRegistrationDeregistered(t *testing.T, s registration.Store) {
	live := fullRegistration("live")
	gone := fullRegistration("gone")
	gone.DeregisteredAt = at(-30 * time.Second)
	mustSave(t, s, live, gone)

	all, err := s.LoadRegistrations(context.Background())
	if err != nil {
		t.Fatalf("LoadRegistrations: %v", err)
	}
	if got := endpoints(all); !slices.Equal(got, []string{"live"}) {
		t.Errorf("LoadRegistrations = %q, want only live", got)
	}
	checkRegistration(t, "GetRegistration(gone)", mustGet(t, s, "gone"), gone)

	list, err := s.ListRegistrations(context.Background(), registration.Filter{})
	if err != nil {
		t.Fatalf("ListRegistrations: %v", err)
	}
	if got := endpoints(list); !slices.Equal(got, []string{"gone", "live"}) {
		t.Errorf("ListRegistrations with no filter = %q, want both", got)
	}
}

// filterFixture is a small fleet for the Filter cases. now is the clock of the Online cases.
func filterFixture(now time.Time) []*registration.Registration {
	reg := func(ep string, updated time.Duration, lifetime uint32, fw string, objects ...uint16) *registration.Registration {
		r := &registration.Registration{
			ID: "id-" + ep, Endpoint: ep, Lifetime: lifetime, FirmwareVersion: fw,
			RegisteredAt: now.Add(-time.Hour), UpdatedAt: now.Add(updated), LastSeen: now.Add(updated),
		}
		for _, o := range objects {
			r.Objects = append(r.Objects, registration.ObjectLink{Path: lwm2m.NewPath(o, 0)})
		}
		return r
	}
	deregistered := reg("dev-b2", -10*time.Second, 60, "1.0", 1, 3, 5)
	deregistered.DeregisteredAt = now.Add(-5 * time.Second)
	withVersion := reg("dev-b1", -10*time.Second, 60, "1.0", 3)
	withVersion.Objects = append(withVersion.Objects, registration.ObjectLink{Path: lwm2m.NewPath(5), Version: "1.1"})
	fleet := []*registration.Registration{
		reg("dev-a1", -10*time.Second, 60, "1.0", 1, 3, 5),
		reg("dev-a2", -120*time.Second, 60, "1.1", 1, 3), // expired
		withVersion,
		deregistered,
		reg("other", -10*time.Second, 60, "", 10, 3),
		reg("dev-a", -10*time.Second, 60, "2.0", 33, 50), // 33 and 50 must not match 3 or 5
		reg("dev-\u00e4", -10*time.Second, 60, "1.0", 5), // sorts after every ASCII "dev-" name
		reg("edge", -60*time.Second, 60, "1.0", 5),       // expires exactly at now: offline
		reg("never-updated", 0, 60, "1.0"),
	}
	info := map[string][3]string{ // manufacturer, model, device type
		"dev-a1": {"acme", "M1", "meter"},
		"dev-a2": {"acme", "M2", "meter"},
		"dev-b1": {"Acme", "M1", "tracker"}, // exact matches only: "Acme" is not "acme"
		"other":  {"globex", "M1", "meter"},
		"edge":   {"acme", "m1", ""},
	}
	for _, r := range fleet {
		if i, ok := info[r.Endpoint]; ok {
			r.Manufacturer, r.Model, r.DeviceType = i[0], i[1], i[2]
		}
	}
	return fleet
}

// filterLabels are the labels of the Filter cases; "ghost" has labels but never registered.
var filterLabels = map[string]map[string]string{
	"dev-a1":         {"cell": "c17", "region": "eu"},
	"dev-a2":         {"region": "eu"},
	"dev-b1":         {"cell": "c17", "region": "us"},
	"dev-b2":         {"cell": "c17"},
	"other":          {"region": "e_", "note": "100% 'quoted'"}, // LIKE and quote characters are literal
	"edge":           {"region": "EU"},
	"never-updated":  {"cell": ""},
	"ghost":          {"region": "eu", "cell": "c17"},
	"dev-unlabelled": {},
}

func testRegistrationFilter(t *testing.T, s registration.Store) {
	now := base
	fleet := filterFixture(now)
	never := fleet[len(fleet)-1]
	never.UpdatedAt = time.Time{} // no Update yet: expired from the start
	mustSave(t, s, fleet...)
	ls := labelStore(t, s)
	for ep, l := range filterLabels {
		if err := ls.SetLabels(context.Background(), ep, l); err != nil {
			t.Fatalf("SetLabels(%s): %v", ep, err)
		}
	}

	yes, no := true, false
	obj := func(id uint16) *uint16 { return &id }
	tests := []struct {
		name string
		f    registration.Filter
		want []string
	}{
		{"all", registration.Filter{},
			[]string{"dev-a", "dev-a1", "dev-a2", "dev-b1", "dev-b2", "dev-\u00e4", "edge", "never-updated", "other"}},
		{"prefix", registration.Filter{EndpointPrefix: "dev-a"}, []string{"dev-a", "dev-a1", "dev-a2"}},
		{"prefix bytewise", registration.Filter{EndpointPrefix: "dev-"},
			[]string{"dev-a", "dev-a1", "dev-a2", "dev-b1", "dev-b2", "dev-\u00e4"}},
		{"prefix non-ASCII", registration.Filter{EndpointPrefix: "dev-\u00e4"}, []string{"dev-\u00e4"}},
		{"prefix exact", registration.Filter{EndpointPrefix: "dev-a1"}, []string{"dev-a1"}},
		{"prefix none", registration.Filter{EndpointPrefix: "zzz"}, nil},
		{"online", registration.Filter{Online: &yes, Now: now},
			[]string{"dev-a", "dev-a1", "dev-b1", "dev-\u00e4", "other"}},
		{"offline", registration.Filter{Online: &no, Now: now},
			[]string{"dev-a2", "dev-b2", "edge", "never-updated"}},
		{"online later", registration.Filter{Online: &yes, Now: now.Add(time.Hour)}, nil},
		{"object 5", registration.Filter{ObjectID: obj(5)},
			[]string{"dev-a1", "dev-b1", "dev-b2", "dev-\u00e4", "edge"}},
		{"object 3", registration.Filter{ObjectID: obj(3)},
			[]string{"dev-a1", "dev-a2", "dev-b1", "dev-b2", "other"}},
		{"object 33", registration.Filter{ObjectID: obj(33)}, []string{"dev-a"}},
		{"object absent", registration.Filter{ObjectID: obj(9)}, nil},
		{"firmware", registration.Filter{FirmwareVersion: "1.0"},
			[]string{"dev-a1", "dev-b1", "dev-b2", "dev-\u00e4", "edge", "never-updated"}},
		{"firmware none", registration.Filter{FirmwareVersion: "9.9"}, nil},
		{"after", registration.Filter{After: "dev-b2"}, []string{"dev-\u00e4", "edge", "never-updated", "other"}},
		{"after missing key", registration.Filter{After: "dev-a3"}, []string{"dev-b1", "dev-b2", "dev-\u00e4", "edge", "never-updated", "other"}},
		{"limit", registration.Filter{Limit: 3}, []string{"dev-a", "dev-a1", "dev-a2"}},
		{"after and limit", registration.Filter{After: "dev-a1", Limit: 2}, []string{"dev-a2", "dev-b1"}},
		{"prefix after limit", registration.Filter{EndpointPrefix: "dev-", After: "dev-b1", Limit: 5},
			[]string{"dev-b2", "dev-\u00e4"}},
		{"combined", registration.Filter{EndpointPrefix: "dev-", Online: &yes, Now: now, ObjectID: obj(5), FirmwareVersion: "1.0"},
			[]string{"dev-a1", "dev-b1", "dev-\u00e4"}},
		{"model", registration.Filter{Model: "M1"}, []string{"dev-a1", "dev-b1", "other"}},
		{"model none", registration.Filter{Model: "M"}, nil},
		{"manufacturer", registration.Filter{Manufacturer: "acme"}, []string{"dev-a1", "dev-a2", "edge"}},
		{"device type", registration.Filter{DeviceType: "meter"}, []string{"dev-a1", "dev-a2", "other"}},
		{"model and manufacturer", registration.Filter{Model: "M1", Manufacturer: "acme"}, []string{"dev-a1"}},
		{"label", registration.Filter{Labels: map[string]string{"region": "eu"}}, []string{"dev-a1", "dev-a2"}},
		{"labels all match", registration.Filter{Labels: map[string]string{"region": "eu", "cell": "c17"}}, []string{"dev-a1"}},
		{"label literal", registration.Filter{Labels: map[string]string{"region": "e_"}}, []string{"other"}},
		{"label quotes", registration.Filter{Labels: map[string]string{"note": "100% 'quoted'"}}, []string{"other"}},
		{"label empty value", registration.Filter{Labels: map[string]string{"cell": ""}}, []string{"never-updated"}},
		{"label none", registration.Filter{Labels: map[string]string{"rack": "7"}}, nil},
		{"label and model online", registration.Filter{Labels: map[string]string{"cell": "c17"}, Model: "M1", Online: &yes, Now: now},
			[]string{"dev-a1", "dev-b1"}},
		{"label after limit", registration.Filter{Labels: map[string]string{"cell": "c17"}, After: "dev-a1", Limit: 1}, []string{"dev-b1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRegistrations(context.Background(), tc.f)
			if err != nil {
				t.Fatalf("ListRegistrations(%+v): %v", tc.f, err)
			}
			if eps := endpoints(got); !slices.Equal(eps, tc.want) && !(len(eps) == 0 && len(tc.want) == 0) {
				t.Errorf("ListRegistrations(%+v) = %q, want %q", tc.f, eps, tc.want)
			}
			// The rows match the store's own semantics of the filter.
			for _, r := range got {
				if tc.f.Online != nil && r.Online(tc.f.Now) != *tc.f.Online {
					t.Errorf("%s: Online(%v) = %v, filter wanted %v", r.Endpoint, tc.f.Now, r.Online(tc.f.Now), *tc.f.Online)
				}
				if tc.f.ObjectID != nil && !r.HasObject(*tc.f.ObjectID) {
					t.Errorf("%s has no object %d", r.Endpoint, *tc.f.ObjectID)
				}
				// Every row carries all of its labels, whatever the filter matched on.
				if want := filterLabels[r.Endpoint]; !maps.Equal(r.Labels, want) || (len(want) == 0 && r.Labels != nil) {
					t.Errorf("%s: labels %v, want %v", r.Endpoint, r.Labels, want)
				}
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		var got []string
		f := registration.Filter{EndpointPrefix: "dev-", Limit: 2}
		for page := 0; page < 10; page++ {
			list, err := s.ListRegistrations(context.Background(), f)
			if err != nil {
				t.Fatalf("ListRegistrations(%+v): %v", f, err)
			}
			if len(list) == 0 {
				break
			}
			got = append(got, endpoints(list)...)
			f.After = list[len(list)-1].Endpoint
		}
		want := []string{"dev-a", "dev-a1", "dev-a2", "dev-b1", "dev-b2", "dev-\u00e4"}
		if !slices.Equal(got, want) {
			t.Errorf("pages of 2 = %q, want %q", got, want)
		}
	})
}

// testRegistrationConcurrent saves from many goroutines at once, as request workers do, with
// some endpoints written by several of them.
func testRegistrationConcurrent(t *testing.T, s registration.Store) {
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := fullRegistration(fmt.Sprintf("dev-%02d-%03d", w, i))
				if i%5 == 0 {
					r = fullRegistration(fmt.Sprintf("shared-%03d", i)) // written by every worker
				}
				r.LastSeen = at(time.Duration(w) * time.Millisecond)
				if err := s.SaveRegistration(context.Background(), r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("SaveRegistration: %v", err)
	}
	all, err := s.LoadRegistrations(context.Background())
	if err != nil {
		t.Fatalf("LoadRegistrations: %v", err)
	}
	want := workers*(each-each/5) + each/5
	if len(all) != want {
		t.Fatalf("LoadRegistrations returned %d registrations, want %d", len(all), want)
	}
	for _, r := range all {
		w := fullRegistration(r.Endpoint)
		w.LastSeen = r.LastSeen // whichever worker won
		checkRegistration(t, r.Endpoint, r, w)
	}
}

func testRegistrationCancelled(t *testing.T, s registration.Store) {
	ctx := cancelled()
	wantCanceled(t, "SaveRegistration", s.SaveRegistration(ctx, fullRegistration("late")))
	_, err := s.GetRegistration(ctx, "late")
	wantCanceled(t, "GetRegistration", err)
	_, err = s.LoadRegistrations(ctx)
	wantCanceled(t, "LoadRegistrations", err)
	_, err = s.ListRegistrations(ctx, registration.Filter{})
	wantCanceled(t, "ListRegistrations", err)

	// The cancelled save did not happen.
	if _, err := s.GetRegistration(context.Background(), "late"); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("GetRegistration after a cancelled save: err = %v, want registration.ErrNotFound", err)
	}
	// A deadline that passes while waiting is honoured too.
	dl, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-dl.Done()
	if err := s.SaveRegistration(dl, fullRegistration("later")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SaveRegistration past its deadline: err = %v, want context.DeadlineExceeded", err)
	}
}
