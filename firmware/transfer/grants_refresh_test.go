package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// TestGrantCacheRefresh: what the cache answers for an entry at each age, and whether the
// caller must ask Grants.
func TestGrantCacheRefresh(t *testing.T) {
	const ttl = 2 * time.Second
	t0 := time.Unix(1_000_000, 0)
	k := grantKey{job: "j"}
	granted := grantEntry{grant: Grant{Size: 1}, until: t0.Add(ttl)}
	forbidden := grantEntry{err: ErrForbidden, until: t0.Add(ttl)}
	type step struct {
		at         time.Duration // after t0
		ok         bool          // served from the cache
		refreshing bool          // the entry served is one being refreshed
	}
	for _, c := range []struct {
		name   string
		entry  *grantEntry // nil: none
		failed bool        // refreshFailed after the first step
		steps  []step
	}{
		{"none", nil, false, []step{{0, false, false}, {0, false, false}}},
		{"fresh", &granted, false, []step{{ttl, true, false}, {ttl, true, false}}},
		{"expired: one asks, the others are served", &granted, false,
			[]step{{ttl + 1, false, false}, {ttl + 1, true, true}, {2 * ttl, true, true}}},
		{"past the grace: asked again", &granted, false,
			[]step{{ttl + 1, false, false}, {2*ttl + 1, false, false}, {2*ttl + 1, false, false}}},
		{"expired long ago: asked", &granted, false, []step{{3 * ttl, false, false}}},
		{"a refusal is not served expired", &forbidden, false,
			[]step{{ttl + 1, false, false}, {ttl + 1, false, false}}},
		{"a failed refresh lets the next ask", &granted, true,
			[]step{{ttl + 1, false, false}, {ttl + 1, false, false}, {ttl + 1, true, true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			gc := newGrantCache(16)
			if c.entry != nil {
				gc.add(k, *c.entry)
			}
			for i, s := range c.steps {
				e, ok := gc.get(k, t0.Add(s.at), ttl)
				if ok != s.ok || (ok && e.refreshing != s.refreshing) {
					t.Fatalf("step %d at +%v: ok %v refreshing %v, want %v %v", i, s.at, ok, e.refreshing, s.ok, s.refreshing)
				}
				if i == 0 && c.failed {
					gc.refreshFailed(k)
				}
			}
		})
	}
}

// expiredGrant starts a server on the fixture's clock, serves block 0 of job1 to one peer (its
// grant cached) and moves the clock past GrantTTL; block asks for a block as that peer.
func expiredGrant(t *testing.T) (f *fixture, block func(num uint32) transport.Code) {
	t.Helper()
	f = startServer(t, Config{}, imageSize)
	f.srv.now = f.clock.now
	path := PathPrefix + f.token(t, "job1")
	peer := transport.Peer{Addr: transport.Addr{Network: transport.UDP, AddrPort: netip.MustParseAddrPort("192.0.2.7:5683")}}
	block = func(num uint32) transport.Code {
		req := &transport.Message{Code: transport.GET, Path: path, Block2: transport.Block{Set: true, Num: num, SZX: 6}}
		return f.srv.ServeCoAP(context.Background(), peer, req).Code
	}
	if code := block(0); code != transport.Content {
		t.Fatalf("block 0: %v", code)
	}
	f.clock.add(DefaultConfig().GrantTTL + time.Millisecond)
	return f, block
}

// TestExpiredGrantServedWhileRefreshed: when a device's grant expires, one of its requests asks
// Grants again and the others (its retransmissions, its next blocks) are answered from the
// expired grant meanwhile rather than each asking storage too; what the refresh answers
// counts from then on. Before, every request that found the grant expired asked Grants and
// waited for storage: with storage slow (100 ms a job read under -race in CI) a download
// slowed to a few blocks per GrantTTL, so most of its requests asked.
func TestExpiredGrantServedWhileRefreshed(t *testing.T) {
	f, block := expiredGrant(t)

	f.grants.update(func(g *fakeGrants) {
		g.gate, g.entered = make(chan struct{}), make(chan struct{}, 1)
		g.jobs = map[string]Grant{} // the job stops delivering: the refresh is refused
	})
	refreshed := make(chan transport.Code, 1)
	go func() { refreshed <- block(1) }()
	select {
	case <-f.grants.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request after GrantTTL did not ask Grants")
	}
	// The refresh is held: the device's other requests are served from the expired grant.
	others := make(chan error, 1)
	go func() {
		for num := uint32(1); num <= 3; num++ {
			if code := block(num); code != transport.Content {
				others <- fmt.Errorf("block %d while the grant is refreshed: %v, want 2.05", num, code)
				return
			}
		}
		others <- nil
	}()
	select {
	case err := <-others:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(f.grants.gate) // let the held requests end
		t.Fatal("the device's other requests waited for the refresh")
	}
	if calls := f.grants.callCount(); calls != 2 {
		t.Fatalf("Grants asked %d times, want 2 (the first block, one refresh)", calls)
	}
	if got := value(f.srv.m.grantsStale); got != 3 {
		t.Fatalf("grants_stale = %v, want 3", got)
	}
	close(f.grants.gate)
	if code := <-refreshed; code != transport.Forbidden {
		t.Fatalf("the refreshing request: %v, want 4.03 (the job stopped delivering)", code)
	}
	f.grants.update(func(g *fakeGrants) {
		g.gate = nil
	})
	if code := block(4); code != transport.Forbidden {
		t.Fatalf("after the refresh: %v, want 4.03", code)
	}
	if got := value(f.srv.m.grantLookups.WithLabelValues(lookupForbidden)); got != 1 {
		t.Fatalf("forbidden lookups = %v, want 1 (the refusal is cached)", got)
	}
}

// TestGrantRefreshFailureAskedAgain: a refresh that fails (storage down: 5.03) does not leave
// the device on the expired grant: its next request asks again.
func TestGrantRefreshFailureAskedAgain(t *testing.T) {
	f, block := expiredGrant(t)
	f.grants.update(func(g *fakeGrants) {
		g.fail = errors.New("storage down")
	})
	if code := block(1); code != transport.ServiceUnavailable {
		t.Fatalf("block 1 with Grants failing: %v, want 5.03", code)
	}
	f.grants.update(func(g *fakeGrants) {
		g.fail = nil
	})
	if code := block(1); code != transport.Content {
		t.Fatalf("block 1 once Grants answers again: %v", code)
	}
	if calls := f.grants.callCount(); calls != 3 {
		t.Fatalf("Grants asked %d times, want 3", calls)
	}
	if got := value(f.srv.m.grantLookups.WithLabelValues(lookupFailed)); got != 1 {
		t.Fatalf("failed lookups = %v, want 1", got)
	}
}
