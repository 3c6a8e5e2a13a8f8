package transfer

import (
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwota/lwota/server/transport"
)

// TestStalledGrantHolderHoldsUpOnlyItsShard: a handler descheduled while it holds the grant
// cache's lock (preempted, or its thread taken by the OS on a busy machine) must not hold up the
// blocks of every other device. With one lock for the whole cache it did: at 1,000 DTLS devices
// pulling (lwota bench pull, issue 16) dozens of handlers at a time waited behind such a holder,
// on the transport's inline slots and then on overflow goroutines. The test holds one device's
// shard the way a stalled holder would; another device's block is still served, and the first
// device's once the holder lets go.
func TestStalledGrantHolderHoldsUpOnlyItsShard(t *testing.T) {
	f := startServer(t, Config{}, imageSize)
	path := PathPrefix + f.token(t, "job1")
	key := func(c *rawClient) grantKey {
		ap := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
		return grantKey{job: "job1", peer: transport.Peer{Addr: transport.Addr{Network: transport.UDP, AddrPort: ap}}}
	}
	stalled := newRawClient(t, f.addr)
	other := newRawClient(t, f.addr)
	// Another shard than stalled's: one in 64 shares it. (With one lock for all, as before,
	// every device shares it, and the test fails below.)
	for range 100 {
		if f.srv.gc.shard(key(other)) != f.srv.gc.shard(key(stalled)) {
			break
		}
		other = newRawClient(t, f.addr)
	}
	for _, c := range []*rawClient{stalled, other} {
		if r, err := c.get(path, &transport.Block{Num: 0, SZX: 2}); err != nil || r.code != codes.Content {
			t.Fatalf("block 0: %v %v", r.code, err)
		}
	}

	sh := f.srv.gc.shard(key(stalled))
	sh.mu.Lock()
	locked := true
	defer func() {
		if locked {
			sh.mu.Unlock()
		}
	}()
	waiting := make(chan error, 1)
	go func() {
		r, err := stalled.get(path, &transport.Block{Num: 1, SZX: 2})
		if err == nil && r.code != codes.Content {
			err = errCode(r.code)
		}
		waiting <- err
	}()
	// get retransmits for about 4 s before it gives up: long enough under load, and a single
	// lock (the old cache) never answers while the holder stalls.
	if r, err := other.get(path, &transport.Block{Num: 1, SZX: 2}); err != nil || r.code != codes.Content {
		t.Fatalf("another device's block while one shard's holder stalls: %v %v", r.code, err)
	}
	sh.mu.Unlock()
	locked = false
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the stalled shard's device, once its holder let go: %v", err)
		}
	case <-time.After(30 * time.Second): // never happens: get gives up after about 4 s
		t.Fatal("the stalled shard's device got no answer")
	}
}

type errCode codes.Code

func (e errCode) Error() string { return "answered " + codes.Code(e).String() }
