package transport

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestDedup_ExpiresInBulkAfterExchangeLifetime(t *testing.T) {
	life := int64(247 * time.Second)
	d := newDedup(life)
	ap := netip.MustParseAddrPort("192.0.2.1:5683")
	k := makeDedupKey(ap, 42)
	if st, _ := d.begin(k, 0); st != dedupNew {
		t.Fatalf("first: %v", st)
	}
	if st, _ := d.begin(k, 1); st != dedupPending {
		t.Fatalf("while handling: %v", st)
	}
	d.finish(k, []byte{1, 2, 3}, 2)
	for _, now := range []int64{3, life / 2, life} {
		st, b := d.begin(k, now)
		if st != dedupDone || !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Fatalf("at %v: %v % x", time.Duration(now), st, b)
		}
	}
	// Kept at least ExchangeLifetime, gone by ExchangeLifetime*(1+1/dedupSpans)+span.
	d.sweep(life + life/dedupSpans*2)
	if n := d.len(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	if st, _ := d.begin(k, life+life/dedupSpans*2); st != dedupNew {
		t.Fatalf("after expiry: %v", st)
	}
}

func TestDedup_KeyIncludesPeer(t *testing.T) {
	d := newDedup(int64(time.Minute))
	a := makeDedupKey(netip.MustParseAddrPort("192.0.2.1:5683"), 1)
	b := makeDedupKey(netip.MustParseAddrPort("192.0.2.1:5684"), 1)
	d.begin(a, 0)
	d.finish(a, []byte{9}, 0)
	if st, _ := d.begin(b, 0); st != dedupNew {
		t.Fatal("another port shares the entry")
	}
}

func TestDedup_HeapPerEntry(t *testing.T) {
	// The heap is the process's: memory other tests' goroutines allocate or free between the
	// two GCs moves the figure either way. The smallest of three measurements that are not
	// negative (a shrink means someone else freed memory) is this cache's own.
	per := -1.0
	for range 3 {
		if m := dedupBytesPerEntry(10000); m >= 0 && (per < 0 || m < per) {
			per = m
		}
	}
	if per < 0 {
		t.Fatal("the heap shrank in each of three measurements: nothing measured")
	}
	t.Logf("dedup: %.0f bytes of heap per entry (10k Register answers)", per)
	if per > 256 {
		t.Fatalf("%.0f bytes per entry", per)
	}
}

// Idle devices cost the transport nothing: once ExchangeLifetime has passed, every per-peer
// trace (duplicate cache, message-id counters, Block1 reassemblies) is gone.
func TestEndpoint_IdlePeersLeaveNoState(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Created) }}
	cfg := testConfig()
	cfg.ExchangeLifetime = 200 * time.Millisecond
	ep := startEndpoint(t, h, cfg)
	for i := range 20 {
		dev := newRawPeer(t)
		r := req(POST, "/rd", byte(i))
		r.Query = []string{"ep=dev"}
		dev.send(ep.addr, datagram(t, typeNON, 1, r)) // NON: the answer uses a message id counter
		dev.send(ep.addr, datagram(t, typeCON, 2, block1Req(1, 0, true, 0, payloadOf(16))))
		dev.recv()
		dev.recv()
	}
	if ep.dedup.len() == 0 || ep.block1.len() == 0 {
		t.Fatal("no state recorded")
	}
	eventually(t, "state to expire", func() bool {
		ep.mids.mu.Lock()
		mids := len(ep.mids.m)
		ep.mids.mu.Unlock()
		return ep.dedup.len() == 0 && ep.block1.len() == 0 && mids == 0
	})
}
