package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// NoSecTouchStore is a registration store that keeps the devices' DTLS credentials too and
// checks them in the touch of a NoSec Update (registration.NoSecToucher).
type NoSecTouchStore interface {
	registration.Store
	registration.NoSecToucher
	credentials.Store
}

// RunNoSecTouch is the contract of registration.NoSecToucher.
func RunNoSecTouch(t *testing.T, open func(t *testing.T) NoSecTouchStore) {
	parallel(t, "Cases", open, testNoSecTouchCases)
	parallel(t, "CredentialBeforeTouchSeen", open, testNoSecTouchSeesCredential)
	parallel(t, "Concurrent", open, testNoSecTouchConcurrent)
}

// nosecRegistration is what the registry stores for a NoSec device: no identity, a UDP address.
func nosecRegistration(ep string) *registration.Registration {
	r := fullRegistration(ep)
	r.Identity = ""
	r.Addr = transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort("192.0.2.7:5683")}
	return r
}

// nosecTouch is an Update of r renewing its lifetime at d from a new port.
func nosecTouch(r *registration.Registration, d time.Duration, port uint16) *registration.Registration {
	next := *r
	next.UpdatedAt, next.LastSeen = at(d), at(d)
	next.Addr = transport.Addr{Network: transport.UDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), port)}
	return &next
}

// checkTouched fails t unless the stored row of want.Endpoint holds want's times, expiry and
// address.
func checkTouched(t *testing.T, s registration.Store, want *registration.Registration) {
	t.Helper()
	got, err := s.GetRegistration(context.Background(), want.Endpoint)
	if err != nil {
		t.Fatalf("GetRegistration(%s): %v", want.Endpoint, err)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) || !got.LastSeen.Equal(want.LastSeen) || !got.ExpiresAt().Equal(want.ExpiresAt()) ||
		got.Addr != want.Addr || got.ID != want.ID {
		t.Errorf("%s stored: id %s, updated %v, seen %v, address %v; want id %s, %v, %v, %v", want.Endpoint, got.ID,
			got.UpdatedAt, got.LastSeen, got.Addr, want.ID, want.UpdatedAt, want.LastSeen, want.Addr)
	}
}

// testNoSecTouchCases: a NoSec touch changes the row of an endpoint without a credential, and
// leaves every other row alone: ErrSecuredEndpoint for an endpoint that has a credential (its
// registration made before the credential), ErrNotFound for an id or endpoint with no row.
func testNoSecTouchCases(t *testing.T, s NoSecTouchStore) {
	ctx := context.Background()
	for _, ep := range []string{"plain", "secured", "secured-stale", "freed"} {
		if err := s.SaveRegistration(ctx, nosecRegistration(ep)); err != nil {
			t.Fatal(err)
		}
	}
	for i, ep := range []string{"secured", "secured-stale", "freed"} {
		if err := s.SaveCredential(ctx, sealed(ep, "id-"+ep, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteCredential(ctx, "freed"); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name, ep, id string
		want         error // nil: the touch is stored
	}{
		{"no credential", "plain", "rplain", nil},
		{"credential", "secured", "rsecured", registration.ErrSecuredEndpoint},
		{"credential and a stale id", "secured-stale", "stale", registration.ErrSecuredEndpoint},
		{"credential deleted", "freed", "rfreed", nil},
		{"stale id", "plain", "stale", registration.ErrNotFound},
		{"no row", "nobody", "rnobody", registration.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before *registration.Registration
			if tc.ep != "nobody" {
				var err error
				if before, err = s.GetRegistration(ctx, tc.ep); err != nil {
					t.Fatal(err)
				}
			}
			r := nosecTouch(nosecRegistration(tc.ep), time.Duration(i+1)*time.Hour, uint16(6000+i))
			r.ID = tc.id
			err := s.TouchRegistrationNoSec(ctx, r)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("TouchRegistrationNoSec: %v", err)
				}
				checkTouched(t, s, r)
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("TouchRegistrationNoSec: %v, want %v", err, tc.want)
			}
			if tc.want == registration.ErrSecuredEndpoint && errors.Is(err, registration.ErrNotFound) {
				t.Errorf("a refusal also matches ErrNotFound: %v", err)
			}
			if before != nil {
				checkTouched(t, s, before) // unchanged
			} else if _, err := s.GetRegistration(ctx, tc.ep); !errors.Is(err, registration.ErrNotFound) {
				t.Errorf("a refused touch of no row made one: %v", err)
			}
		})
	}
}

// testNoSecTouchSeesCredential: a credential committed before a touch starts is always seen by
// it, while other devices' touches run beside it (and share its batch): every endpoint gets its
// credential, then its touch, which must be refused and change nothing.
func testNoSecTouchSeesCredential(t *testing.T, s NoSecTouchStore) {
	ctx := context.Background()
	const n = 24
	for i := range n {
		for _, ep := range []string{fmt.Sprintf("gains-%02d", i), fmt.Sprintf("keeps-%02d", i)} {
			if err := s.SaveRegistration(ctx, nosecRegistration(ep)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Add(2)
		go func() { // a device without a credential, renewing all the while
			defer wg.Done()
			ep := fmt.Sprintf("keeps-%02d", i)
			for k := range 3 {
				if err := s.TouchRegistrationNoSec(ctx, nosecTouch(nosecRegistration(ep), time.Duration(k+1)*time.Minute, 7000)); err != nil {
					errs <- fmt.Errorf("touch of %s: %w", ep, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			ep := fmt.Sprintf("gains-%02d", i)
			if err := s.SaveCredential(ctx, sealed(ep, "id-"+ep, byte(i))); err != nil {
				errs <- err
				return
			}
			if err := s.TouchRegistrationNoSec(ctx, nosecTouch(nosecRegistration(ep), time.Hour, 7001)); !errors.Is(err, registration.ErrSecuredEndpoint) {
				errs <- fmt.Errorf("touch of %s after its credential was saved: %v, want ErrSecuredEndpoint", ep, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		checkTouched(t, s, nosecRegistration(fmt.Sprintf("gains-%02d", i)))
		checkTouched(t, s, nosecTouch(nosecRegistration(fmt.Sprintf("keeps-%02d", i)), 3*time.Minute, 7000))
	}
}

// testNoSecTouchConcurrent: many NoSec touches at once (a store may run them as one statement),
// every third endpoint with a credential and every fifth touch with a stale id: each touch gets
// its own answer, and only the touches answered nil changed their rows.
func testNoSecTouchConcurrent(t *testing.T, s NoSecTouchStore) {
	ctx := context.Background()
	const n = 60
	ep := func(i int) string { return fmt.Sprintf("dev-%02d", i) }
	for i := range n {
		if err := s.SaveRegistration(ctx, nosecRegistration(ep(i))); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := s.SaveCredential(ctx, sealed(ep(i), "id-"+ep(i), byte(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(i int) error {
		switch {
		case i%3 == 0:
			return registration.ErrSecuredEndpoint
		case i%5 == 0:
			return registration.ErrNotFound
		}
		return nil
	}
	touch := func(i int) *registration.Registration {
		r := nosecTouch(nosecRegistration(ep(i)), time.Hour, uint16(8000+i))
		if i%5 == 0 {
			r.ID = "stale"
		}
		return r
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.TouchRegistrationNoSec(ctx, touch(i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if w := want(i); (w == nil) != (err == nil) || !errors.Is(err, w) {
			t.Errorf("touch of %s: %v, want %v", ep(i), err, w)
		}
		if want(i) == nil {
			checkTouched(t, s, touch(i))
		} else {
			checkTouched(t, s, nosecRegistration(ep(i)))
		}
	}
}
