package registration_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// memStore keeps registrations in a map: the registry's own work on the Update path, counted
// apart from a database's.
type memStore struct {
	mu   sync.Mutex
	regs map[string]registration.Registration
}

func (s *memStore) SaveRegistration(_ context.Context, r *registration.Registration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.regs == nil {
		s.regs = make(map[string]registration.Registration)
	}
	s.regs[r.Endpoint] = *r
	return nil
}

func (s *memStore) TouchRegistration(_ context.Context, r *registration.Registration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.regs[r.Endpoint]
	if !ok || cur.ID != r.ID {
		return registration.ErrNotFound
	}
	cur.UpdatedAt, cur.LastSeen, cur.Addr = r.UpdatedAt, r.LastSeen, r.Addr
	s.regs[r.Endpoint] = cur
	return nil
}

func (s *memStore) LoadRegistrations(context.Context) ([]*registration.Registration, error) {
	return nil, nil
}

func (s *memStore) GetRegistration(_ context.Context, endpoint string) (*registration.Registration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.regs[endpoint]
	if !ok {
		return nil, registration.ErrNotFound
	}
	return &r, nil
}

func (s *memStore) ListRegistrations(context.Context, registration.Filter) ([]*registration.Registration, error) {
	return nil, nil
}

// An Update that renews the lifetime (the steady-state load of a fleet) costs the registry two
// allocations of its own: the new snapshot and the 2.04. The device's record stays in the
// index and is changed in place; before, it was removed from four maps and added again as a
// new record, one allocation more.
func TestUpdateAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts do not hold under the race detector")
	}
	reg := registration.New(&memStore{}, nil, registration.DefaultConfig(), nil, nil, nil)
	dev := peer(40000, "")
	resp := reg.ServeCoAP(context.Background(), dev, request(transport.POST, "/rd", "</1/0>,</3/0>", "ep=dev-1", "lt=60"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	req := request(transport.POST, "/rd/"+resp.LocationPath[1], "")
	n := testing.AllocsPerRun(200, func() {
		if resp := reg.ServeCoAP(context.Background(), dev, req); resp.Code != transport.Changed {
			t.Fatalf("update answered %s", resp.Code)
		}
	})
	if n > 2 {
		t.Errorf("an Update: %.0f allocations in the registry, want at most 2", n)
	}
}

// An Update keeps the index right while the record is changed in place: the device is found at
// the address it updated from and no longer at the old one, an Update from an address another
// device registered from since takes it back, and an Update clears the unreachable mark.
func TestUpdateMovesAddressInPlace(t *testing.T) {
	reg := registration.New(&memStore{}, nil, registration.DefaultConfig(), nil, nil, nil)
	ctx := context.Background()
	register := func(ep string, from transport.Peer) string {
		t.Helper()
		resp := reg.ServeCoAP(ctx, from, request(transport.POST, "/rd", "</1/0>", "ep="+ep, "lt=60"))
		if resp.Code != transport.Created {
			t.Fatalf("register %s answered %s", ep, resp.Code)
		}
		return resp.LocationPath[1]
	}
	update := func(id string, from transport.Peer) {
		t.Helper()
		if resp := reg.ServeCoAP(ctx, from, request(transport.POST, "/rd/"+id, "")); resp.Code != transport.Changed {
			t.Fatalf("update %s answered %s", id, resp.Code)
		}
	}
	owner := func(from transport.Peer) string {
		if r, ok := reg.ByPeer(from); ok {
			return r.Endpoint
		}
		return ""
	}
	a, b, c := peer(41000, ""), peer(41001, ""), peer(41002, "")
	id1 := register("dev-1", a)
	update(id1, b) // a NAT moved the device
	if got := owner(a); got != "" {
		t.Errorf("old address still names %q", got)
	}
	if got := owner(b); got != "dev-1" {
		t.Errorf("new address names %q, want dev-1", got)
	}
	if r, _ := reg.Get("dev-1"); r.Addr != b.Addr {
		t.Errorf("registration at %v, want %v", r.Addr, b.Addr)
	}

	register("dev-2", c) // another device registers from c ...
	update(id1, c)       // ... and dev-1 updates from c after it
	if got := owner(c); got != "dev-1" {
		t.Errorf("address of the last Update names %q, want dev-1", got)
	}

	reg.MarkUnreachable("dev-1")
	if r, _ := reg.Get("dev-1"); r.UnreachableSince.IsZero() {
		t.Fatal("mark not set")
	}
	update(id1, c)
	if r, _ := reg.Get("dev-1"); !r.UnreachableSince.IsZero() {
		t.Errorf("an Update left the unreachable mark (since %v)", r.UnreachableSince)
	}
	if r, _ := reg.Get("dev-1"); r.LastSeen.IsZero() || r.Addr.AddrPort != netip.MustParseAddrPort("127.0.0.1:41002") {
		t.Errorf("registration %+v", r)
	}
}

// The scan for lapsed lifetimes reads the expiry kept in the device's record, not the
// snapshot's: every new snapshot must move it. An Update renews the lifetime from its own time
// (with the lifetime it names, if any), and recording device attributes leaves it alone.
func TestExpiryFollowsEveryUpdate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dev := peer(42000, "")
	resp := f.do(dev, request(transport.POST, "/rd", "</3/0>", "ep=renewing", "lt=60"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	id := resp.LocationPath[1]
	expireNone := func(when string) {
		t.Helper()
		if n := f.reg.ExpireNow(ctx); n != 0 {
			t.Fatalf("%s: %d expired, want none", when, n)
		}
		if _, ok := f.reg.Get("renewing"); !ok {
			t.Fatalf("%s: registration gone", when)
		}
	}
	f.clock.Add(50 * time.Second)
	if resp := f.do(dev, request(transport.POST, "/rd/"+id, "")); resp.Code != transport.Changed {
		t.Fatalf("update answered %s", resp.Code)
	}
	f.clock.Add(50 * time.Second) // 100 s after the Register, 50 s after the Update
	expireNone("a renewed lifetime")

	if resp := f.do(dev, request(transport.POST, "/rd/"+id, "", "lt=600")); resp.Code != transport.Changed {
		t.Fatalf("update with lt answered %s", resp.Code)
	}
	f.clock.Add(500 * time.Second)
	expireNone("a longer lifetime")

	if err := f.reg.RecordDeviceInfo(ctx, "renewing", []lwm2m.Record{{Path: lwm2m.MustParsePath("/3/0/1"), Value: lwm2m.String("m1")}}); err != nil {
		t.Fatal(err)
	}
	expireNone("device attributes")
	f.clock.Add(101 * time.Second) // 601 s after the last Update
	if n := f.reg.ExpireNow(ctx); n != 1 {
		t.Fatalf("%d expired after the lifetime ran out, want 1", n)
	}
}
