package transfer

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// grantCache holds the Grants answers the Server reuses for GrantTTL, split into shards by key,
// each with its own lock. One lock for the whole fleet was the most contended thing on the
// server in lwota bench pull at 1,000 DTLS devices (issue 16): every block takes it, and a
// holder descheduled mid-section (its goroutine preempted, its thread taken by the OS on a busy
// machine) made every other handler wait behind it. Over DTLS those handlers sit on the inline
// slots and record goroutines meanwhile, so the rest of the fleet's records went to the workers'
// queue and then to overflow goroutines. The mutex profile of one run (6 s of DTLS and 6 s of
// plain pulling) counted 160 s of waiting on this lock and 54 s on the DTLS link's; 3 s in all
// with shards (measured together with DTLS writes off the link's lock, a change not kept: the
// pull rate did not move). A stalled holder now holds up only its shard's devices.
type grantCache struct {
	seed   maphash.Seed
	shards []grantShard
}

// grantShards is how many shards a grant cache has at most: enough that few of a fleet's
// requests share a shard with a stalled holder.
const grantShards = 64

type grantShard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[grantKey, grantEntry]
	_   [40]byte // its own cache line: shards next to each other do not share one
}

// newGrantCache returns a cache of at most size entries (at least one per shard).
func newGrantCache(size int) *grantCache {
	n := max(min(grantShards, size), 1)
	c := &grantCache{seed: maphash.MakeSeed(), shards: make([]grantShard, n)}
	for i := range c.shards {
		c.shards[i].lru = mustLRU[grantKey, grantEntry](size / n)
	}
	return c
}

func (c *grantCache) shard(k grantKey) *grantShard {
	return &c.shards[maphash.Comparable(c.seed, k)%uint64(len(c.shards))]
}

// get returns k's entry and true when it is to be used; false tells the caller to ask Grants.
// An expired grant is served for up to grace more while one caller refreshes it: that caller
// gets false (and the entry is marked refreshing), the others get the old grant. Without
// this, every request that found the entry expired asked Grants itself, and a device's
// requests waited for storage once per GrantTTL each; when storage is slow (seen under -race
// in CI: 100 ms a job read) a device makes few requests per GrantTTL, so most of them missed,
// and its retransmissions of a request waiting on storage asked again: the slower the server,
// the more it read (issue 16).
func (c *grantCache) get(k grantKey, now time.Time, grace time.Duration) (e grantEntry, ok bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok = sh.lru.Get(k)
	switch {
	case !ok || !now.After(e.until):
		return e, ok
	case e.err == nil && e.refreshing && !now.After(e.until.Add(grace)):
		return e, true // another request is asking Grants
	case e.err == nil && !e.refreshing && !now.After(e.until.Add(grace)):
		e.refreshing = true
		sh.lru.Add(k, e)
		return grantEntry{}, false
	}
	sh.lru.Remove(k)
	return grantEntry{}, false
}

// refreshFailed clears k's refreshing mark after Grants failed (not a refusal), so that the
// next request asks again rather than being served the old grant until its grace ends.
func (c *grantCache) refreshFailed(k grantKey) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.lru.Peek(k); ok && e.refreshing {
		e.refreshing = false
		sh.lru.Add(k, e)
	}
}

func (c *grantCache) add(k grantKey, e grantEntry) {
	sh := c.shard(k)
	sh.mu.Lock()
	sh.lru.Add(k, e)
	sh.mu.Unlock()
}

// purge forgets every entry.
func (c *grantCache) purge() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.lru.Purge()
		sh.mu.Unlock()
	}
}
