package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/lwota/lwota/server/registration"
)

// labelStore returns s as a registration.LabelStore; the registration contract includes labels.
func labelStore(t *testing.T, s registration.Store) registration.LabelStore {
	t.Helper()
	ls, ok := s.(registration.LabelStore)
	if !ok {
		t.Fatalf("%T does not implement registration.LabelStore", s)
	}
	return ls
}

func mustLabels(t *testing.T, ls registration.LabelStore, ep string) map[string]string {
	t.Helper()
	l, err := ls.Labels(context.Background(), ep)
	if err != nil {
		t.Fatalf("Labels(%s): %v", ep, err)
	}
	if l == nil {
		t.Fatalf("Labels(%s) = nil, want a map", ep)
	}
	return l
}

// testLabels: labels live apart from registrations, may come before the first registration,
// are replaced as a whole, and are joined into GetRegistration and ListRegistrations only.
func testLabels(t *testing.T, s registration.Store) {
	ctx := context.Background()
	ls := labelStore(t, s)
	if got := mustLabels(t, ls, "nobody"); len(got) != 0 {
		t.Errorf("Labels of an unknown endpoint = %v, want none", got)
	}

	// Provisioning labels a device before it ever registers.
	first := map[string]string{"cell": "c17", "region": "eu", "batch": "2026-11.a", "empty": "", "odd": "50% off, 'quoted' \"too\" ünïcode"}
	if err := ls.SetLabels(ctx, "dev", first); err != nil {
		t.Fatalf("SetLabels before registration: %v", err)
	}
	if got := mustLabels(t, ls, "dev"); !maps.Equal(got, first) {
		t.Errorf("Labels = %v, want %v", got, first)
	}
	if _, err := s.GetRegistration(ctx, "dev"); !errors.Is(err, registration.ErrNotFound) {
		t.Errorf("GetRegistration of a labelled but unregistered endpoint: err = %v, want ErrNotFound", err)
	}
	if list, err := s.ListRegistrations(ctx, registration.Filter{}); err != nil || len(list) != 0 {
		t.Errorf("ListRegistrations = %q, %v; labels alone list nothing", endpoints(list), err)
	}

	// SaveRegistration neither stores nor clears labels; Get and List join them in, Load does not.
	reg := fullRegistration("dev")
	reg.Labels = map[string]string{"ignored": "yes"}
	mustSave(t, s, reg)
	want := *reg
	want.Labels = first
	checkRegistration(t, "GetRegistration", mustGet(t, s, "dev"), &want)
	list, err := s.ListRegistrations(ctx, registration.Filter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListRegistrations = %d rows, %v; want 1", len(list), err)
	}
	checkRegistration(t, "ListRegistrations", list[0], &want)
	loaded, err := s.LoadRegistrations(ctx)
	if err != nil || len(loaded) != 1 || loaded[0].Labels != nil {
		t.Fatalf("LoadRegistrations = %+v, %v; want one registration without labels", loaded, err)
	}
	mustSave(t, s, fullRegistration("dev")) // a re-registration keeps them
	if got := mustGet(t, s, "dev").Labels; !maps.Equal(got, first) {
		t.Errorf("labels after a second save = %v, want %v", got, first)
	}

	// SetLabels replaces the whole set.
	second := map[string]string{"region": "us", "rack": "7"}
	if err := ls.SetLabels(ctx, "dev", second); err != nil {
		t.Fatalf("SetLabels: %v", err)
	}
	if got := mustGet(t, s, "dev").Labels; !maps.Equal(got, second) {
		t.Errorf("labels after replacing = %v, want %v", got, second)
	}
	if list, err := s.ListRegistrations(ctx, registration.Filter{Labels: map[string]string{"cell": "c17"}}); err != nil || len(list) != 0 {
		t.Errorf("a removed label still matches: %q, %v", endpoints(list), err)
	}
	// Another endpoint's labels are its own.
	if err := ls.SetLabels(ctx, "dev-2", map[string]string{"region": "eu"}); err != nil {
		t.Fatal(err)
	}
	if got := mustLabels(t, ls, "dev"); !maps.Equal(got, second) {
		t.Errorf("labels of dev after setting dev-2's = %v", got)
	}

	// Empty and nil clear them.
	for _, clear := range []map[string]string{{}, nil} {
		if err := ls.SetLabels(ctx, "dev", second); err != nil {
			t.Fatal(err)
		}
		if err := ls.SetLabels(ctx, "dev", clear); err != nil {
			t.Fatalf("SetLabels(%v): %v", clear, err)
		}
		if got := mustGet(t, s, "dev"); got.Labels != nil {
			t.Errorf("labels after SetLabels(%v) = %v, want nil", clear, got.Labels)
		}
		if got := mustLabels(t, ls, "dev"); len(got) != 0 {
			t.Errorf("Labels after SetLabels(%v) = %v, want none", clear, got)
		}
	}

	if err := ls.SetLabels(cancelled(), "dev", first); !errors.Is(err, context.Canceled) {
		t.Errorf("SetLabels with a cancelled context: err = %v, want context.Canceled", err)
	}
	_, err = ls.Labels(cancelled(), "dev")
	wantCanceled(t, "Labels", err)
	if got := mustLabels(t, ls, "dev"); len(got) != 0 {
		t.Errorf("a cancelled SetLabels happened: %v", got)
	}
}

// testLabelLimits: the limits hold exactly at their bounds and a refused set changes nothing.
func testLabelLimits(t *testing.T, s registration.Store) {
	ctx := context.Background()
	ls := labelStore(t, s)
	full := map[string]string{}
	for i := range registration.MaxLabels {
		k := fmt.Sprintf("k%02d-", i) + strings.Repeat("x", registration.MaxLabelKeyLen-4)
		full[k] = strings.Repeat("v", registration.MaxLabelValueLen)
	}
	full["a.b_c-9"] = "" // replaces one of the 64 below
	delete(full, fmt.Sprintf("k%02d-", 0)+strings.Repeat("x", registration.MaxLabelKeyLen-4))
	if err := ls.SetLabels(ctx, "dev", full); err != nil {
		t.Fatalf("SetLabels at the limits: %v", err)
	}
	if got := mustLabels(t, ls, "dev"); !maps.Equal(got, full) {
		t.Fatalf("labels at the limits do not round-trip: %d labels back, want %d", len(got), len(full))
	}

	tooMany := maps.Clone(full)
	tooMany["one-more"] = "x"
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"65 labels", tooMany},
		{"empty key", map[string]string{"": "x"}},
		{"long key", map[string]string{strings.Repeat("k", registration.MaxLabelKeyLen+1): "x"}},
		{"upper case key", map[string]string{"Region": "eu"}},
		{"space in key", map[string]string{"my key": "x"}},
		{"colon in key", map[string]string{"a:b": "x"}},
		{"non-ASCII key", map[string]string{"régión": "x"}},
		{"long value", map[string]string{"k": strings.Repeat("v", registration.MaxLabelValueLen+1)}},
		{"invalid UTF-8 value", map[string]string{"k": "\xff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ls.SetLabels(ctx, "dev", tc.labels)
			if !errors.Is(err, registration.ErrInvalidLabels) {
				t.Fatalf("SetLabels: err = %v, want ErrInvalidLabels", err)
			}
			if got := mustLabels(t, ls, "dev"); !maps.Equal(got, full) {
				t.Errorf("a refused SetLabels changed the labels (%d now)", len(got))
			}
		})
	}
}
