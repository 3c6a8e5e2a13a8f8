package sqlstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/storage/sqlstore"
)

// TestFirmwareKeyBackfill: registrations stored before migration 00009 get their firmware_key
// when the store opens, so version comparisons find them.
func TestFirmwareKeyBackfill(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			s, err := sqlstore.Open(ctx, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			for ep, v := range map[string]string{"old": "1.2.0", "new": "1.10.0", "odd": "nightly"} {
				if err := s.SaveRegistration(ctx, &registration.Registration{Endpoint: ep, ID: ep, FirmwareVersion: v}); err != nil {
					t.Fatal(err)
				}
			}
			sqlstore.ForgetFirmwareKeys(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, dsn)
			for _, c := range []struct {
				f    registration.Filter
				want []string
			}{
				{registration.Filter{FirmwareOp: "<", FirmwareVersion: "1.9"}, []string{"old"}},
				{registration.Filter{Sort: registration.SortFirmware}, []string{"odd", "old", "new"}},
			} {
				regs, err := s.ListRegistrations(ctx, c.f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range regs {
					got = append(got, r.Endpoint)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("%+v after reopen = %q, want %q", c.f, got, c.want)
				}
			}
		})
	}
}
