package registration_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// touchingStore counts whole-row saves and touches on the way to the real store; fail, when
// set, fails every write as a commit that did not happen would.
type touchingStore struct {
	registration.Store
	toucher registration.Toucher
	saves   atomic.Int64
	touches atomic.Int64
	fail    atomic.Bool
}

var errCommit = errors.New("commit: disk I/O error")

func (s *touchingStore) SaveRegistration(ctx context.Context, r *registration.Registration) error {
	s.saves.Add(1)
	if s.fail.Load() {
		return errCommit
	}
	return s.Store.SaveRegistration(ctx, r)
}

func (s *touchingStore) TouchRegistration(ctx context.Context, r *registration.Registration) error {
	s.touches.Add(1)
	if s.fail.Load() {
		return errCommit
	}
	return s.toucher.TouchRegistration(ctx, r)
}

// TestTimesOnlyUpdateTouches checks that an Update renewing the lifetime and nothing else is
// stored as a touch, durable before 2.04 (a restart finds the new expiry and address), and that
// an Update changing a parameter or the object list still stores the whole registration.
func TestTimesOnlyUpdateTouches(t *testing.T) {
	f := newFixture(t)
	ts := &touchingStore{Store: f.store, toucher: f.store}
	reg := registration.New(ts, nil, registration.DefaultConfig(), nil, nil, f.clock.Now)
	dev := peer(40000, "")
	resp := reg.ServeCoAP(context.Background(), dev, request(transport.POST, "/rd", "</1/0>,</3/0>", "ep=dev-1", "lt=60"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	id := resp.LocationPath[1]
	tests := []struct {
		name           string
		req            *transport.Message
		saves, touches int64
	}{
		{"no parameters", request(transport.POST, "/rd/"+id, ""), 0, 1},
		{"the same lifetime", request(transport.POST, "/rd/"+id, "", "lt=60"), 0, 1},
		{"a new lifetime", request(transport.POST, "/rd/"+id, "", "lt=120"), 1, 0},
		{"a new binding", request(transport.POST, "/rd/"+id, "", "b=UQ"), 1, 0},
		{"an object list", request(transport.POST, "/rd/"+id, "</1/0>,</3/0>,</5/0>"), 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saves, touches := ts.saves.Load(), ts.touches.Load()
			f.clock.Add(10 * time.Second)
			moved := peer(uint16(41000+ts.saves.Load()+ts.touches.Load()), "") // a NAT rebinding each time
			if resp := reg.ServeCoAP(context.Background(), moved, request(tc.req.Code, tc.req.Path, string(tc.req.Payload), tc.req.Query...)); resp.Code != transport.Changed {
				t.Fatalf("update answered %s", resp.Code)
			}
			if got := ts.saves.Load() - saves; got != tc.saves {
				t.Errorf("%d whole-row saves, want %d", got, tc.saves)
			}
			if got := ts.touches.Load() - touches; got != tc.touches {
				t.Errorf("%d touches, want %d", got, tc.touches)
			}
			live, _ := reg.Get("dev-1")
			stored, err := f.store.GetRegistration(context.Background(), "dev-1")
			if err != nil {
				t.Fatal(err)
			}
			if !stored.UpdatedAt.Equal(f.clock.Now()) || stored.Addr != moved.Addr || stored.Lifetime != live.Lifetime ||
				!stored.ExpiresAt().Equal(live.ExpiresAt()) || len(stored.Objects) != len(live.Objects) || stored.QueueMode != live.QueueMode {
				t.Errorf("stored after the update = %+v, live %+v", stored, live)
			}
		})
	}
}

// TestFailedWriteIsNotAcknowledged checks that a Register or Update whose write did not commit
// is answered 5.00, not 2.01 or 2.04, and changes nothing in memory.
func TestFailedWriteIsNotAcknowledged(t *testing.T) {
	f := newFixture(t)
	ts := &touchingStore{Store: f.store, toucher: f.store}
	reg := registration.New(ts, nil, registration.DefaultConfig(), nil, nil, f.clock.Now)
	dev := peer(40000, "")
	resp := reg.ServeCoAP(context.Background(), dev, request(transport.POST, "/rd", "</1/0>", "ep=dev-1", "lt=60"))
	if resp.Code != transport.Created {
		t.Fatalf("register answered %s", resp.Code)
	}
	id := resp.LocationPath[1]
	before, _ := reg.Get("dev-1")
	ts.fail.Store(true)
	f.clock.Add(10 * time.Second)
	for _, req := range []*transport.Message{
		request(transport.POST, "/rd/"+id, ""),          // a touch
		request(transport.POST, "/rd/"+id, "", "lt=90"), // a whole row
		request(transport.POST, "/rd", "</1/0>", "ep=dev-2"),
		request(transport.DELETE, "/rd/"+id, ""),
	} {
		if resp := reg.ServeCoAP(context.Background(), dev, req); resp.Code != transport.InternalServerError {
			t.Errorf("%s %s %v with a failing store answered %s, want 5.00", req.Code, req.Path, req.Query, resp.Code)
		}
	}
	if after, ok := reg.Get("dev-1"); !ok || !after.UpdatedAt.Equal(before.UpdatedAt) || after.Lifetime != 60 {
		t.Errorf("after failed writes, dev-1 = %+v, %v; want it unchanged", after, ok)
	}
	if _, ok := reg.Get("dev-2"); ok {
		t.Error("dev-2 is live although its Register was never stored")
	}
}
