package transport

import (
	"container/list"
	"net/netip"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Server-side block-wise transfers (RFC 7959).
//
// Block2: responses are sliced statelessly. The handler runs again for every block request
// and the transport answers the requested slice of its payload; nothing is kept between blocks.
//
// Block1: request bodies are reassembled in a bounded table keyed by (peer address, method,
// path and query) — not by token, since real clients use a new token per block. The handler
// runs once, with the whole body.
//
// The table is bounded four ways: MaxPendingBlock1 in all, MaxBlock1PerPeer per address and
// port (one device), MaxBlock1PerIP per IP address (every port of a host, or a NAT), and
// MaxBlock1Bytes of memory. An incomplete transfer idle for Block1Timeout (by default RFC 7252
// MAX_TRANSMIT_SPAN, 45 s: a live client has sent its next block, or retransmitted the last
// one, by then) is dropped. When the table or an IP's share of it is full, a new transfer takes
// the place of the least recently active one (of that IP, or of all) if that one has stalled,
// idle for at least ACKTimeout; only when the oldest is still moving is the newcomer answered
// 5.03. So abandoned one-block transfers, from however many ports, cannot lock others out: they
// are evicted oldest first, and expire within Block1Timeout anyway.

// block1Key identifies one incoming Block1 transfer.
type block1Key struct {
	peer netip.AddrPort
	code Code
	uri  string
}

type block1State struct {
	key  block1Key
	body []byte
	last int64         // when the last block arrived
	elem *list.Element // in block1Table.lru
}

type block1Table struct {
	mu         sync.Mutex
	m          map[block1Key]*block1State
	lru        *list.List             // of *block1State, least recently active first
	perPeer    map[netip.AddrPort]int // reassemblies in progress by peer
	perIP      map[netip.Addr]int     // reassemblies in progress by IP address
	bytes      int                    // capacity of every body held
	max        int
	maxPerPeer int
	maxPerIP   int
	exempt     []netip.Prefix // Config.SourceExempt: no MaxBlock1PerIP for these
	proxies    []netip.Prefix // Config.TrustedProxies: each port a device, bounded by MaxBlock1PerPeer alone
	maxBytes   int
	maxBody    int
	timeout    int64 // Block1Timeout: an incomplete transfer idle this long is dropped
	stalled    int64 // ACKTimeout: a transfer idle this long may give its place to a new one
	lim        *limitCounters
	expired    prometheus.Counter
	evicted    prometheus.Counter
}

// block1FirstCap bounds the buffer allocated for the first block: Size1 is what the client
// claims, not what it sent, so a body grows with the blocks that actually arrive.
const block1FirstCap = 16 << 10

// newBlock1Table returns an empty table; dropped counts transfers dropped by reason (expired,
// evicted).
func newBlock1Table(cfg Config, lim *limitCounters, dropped *prometheus.CounterVec) *block1Table {
	return &block1Table{
		m: make(map[block1Key]*block1State), lru: list.New(),
		perPeer: make(map[netip.AddrPort]int), perIP: make(map[netip.Addr]int),
		max: cfg.MaxPendingBlock1, maxPerPeer: cfg.MaxBlock1PerPeer, maxPerIP: cfg.MaxBlock1PerIP, exempt: cfg.SourceExempt,
		proxies:  cfg.TrustedProxies,
		maxBytes: cfg.MaxBlock1Bytes, maxBody: cfg.MaxBodySize,
		timeout: int64(cfg.Block1Timeout), stalled: int64(cfg.ACKTimeout),
		lim: lim, expired: dropped.WithLabelValues("expired"), evicted: dropped.WithLabelValues("evicted"),
	}
}

// drop forgets the reassembly k. Called with t.mu held.
func (t *block1Table) drop(k block1Key, st *block1State) {
	delete(t.m, k)
	t.lru.Remove(st.elem)
	t.bytes -= cap(st.body)
	if n := t.perPeer[k.peer] - 1; n > 0 {
		t.perPeer[k.peer] = n
	} else {
		delete(t.perPeer, k.peer)
	}
	ip := k.peer.Addr()
	if n := t.perIP[ip] - 1; n > 0 {
		t.perIP[ip] = n
	} else {
		delete(t.perIP, ip)
	}
}

// isExempt reports whether ip is in SourceExempt (a NAT gateway of a fleet, the server's own
// host) or TrustedProxies (a balancer, whose every port is one device, held to
// MaxBlock1PerPeer), where MaxBlock1PerIP does not apply.
func (t *block1Table) isExempt(ip netip.Addr) bool {
	if isTrustedProxy(t.proxies, ip) {
		return true
	}
	for _, p := range t.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// touch records activity on st at now. Called with t.mu held.
func (t *block1Table) touch(st *block1State, now int64) {
	st.last = now
	t.lru.MoveToBack(st.elem)
}

// expire drops the transfers idle since before cutoff, oldest first. Called with t.mu held.
func (t *block1Table) expire(cutoff int64) {
	for e := t.lru.Front(); e != nil; e = t.lru.Front() {
		st := e.Value.(*block1State)
		if st.last >= cutoff {
			return
		}
		t.drop(st.key, st)
		t.expired.Inc()
	}
}

// evictOldest drops the least recently active transfer (of ip, when ip is valid) if it has
// stalled, and reports whether it made room. Called with t.mu held.
func (t *block1Table) evictOldest(ip netip.Addr, now int64) bool {
	for e := t.lru.Front(); e != nil; e = e.Next() {
		st := e.Value.(*block1State)
		if ip.IsValid() && st.key.peer.Addr() != ip {
			continue
		}
		if now-st.last < t.stalled {
			return false // the oldest is still moving, and so are the younger ones
		}
		t.drop(st.key, st)
		t.evicted.Inc()
		return true
	}
	return false
}

// busy is the 5.03 answer to a Block1 transfer refused by a limit.
func busy(why string) *Message {
	r := NewMessage(ServiceUnavailable)
	r.Payload = []byte(why)
	return r
}

func requestURI(m *Message) string {
	if len(m.Query) == 0 {
		return m.Path
	}
	return m.Path + "?" + strings.Join(m.Query, "&")
}

// add takes one Block1 request. It returns either an answer to send now (2.31 Continue, 4.08,
// 4.13, 5.03) or, for the last block, the reassembled body.
func (t *block1Table) add(from netip.AddrPort, req *Message, prefSZX uint8, now int64) (answer *Message, body []byte) {
	b := req.Block1
	size := b.Size()
	off := int64(b.Num) * int64(size)
	tooLarge := func() *Message {
		r := NewMessage(RequestEntityTooLarge)
		r.Size1 = int64(t.maxBody)
		r.Block1 = Block{Set: true, Num: b.Num, SZX: b.SZX}
		return r
	}
	if req.Size1 > int64(t.maxBody) || off+int64(len(req.Payload)) > int64(t.maxBody) {
		t.lim.bodySize.Inc()
		k := block1Key{from, req.Code, requestURI(req)}
		t.mu.Lock()
		if st := t.m[k]; st != nil {
			t.drop(k, st)
		}
		t.mu.Unlock()
		return tooLarge(), nil
	}
	if b.Num == 0 && !b.More { // the whole body in one block
		return nil, req.Payload
	}
	k := block1Key{from, req.Code, requestURI(req)}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[k]
	switch {
	case b.Num == 0:
		if st != nil { // the client started over
			t.drop(k, st)
		}
		t.expire(now - t.timeout)
		if t.perPeer[from] >= t.maxPerPeer {
			t.lim.blockPerDevice.Inc()
			return busy("too many block-wise transfers from this address"), nil
		}
		if t.perIP[from.Addr()] >= t.maxPerIP && !t.isExempt(from.Addr()) && !t.evictOldest(from.Addr(), now) {
			t.lim.blockPerIP.Inc()
			return busy("too many block-wise transfers from this IP address"), nil
		}
		if len(t.m) >= t.max && !t.evictOldest(netip.Addr{}, now) {
			t.lim.blockTransfers.Inc()
			return busy("too many block-wise transfers in progress"), nil
		}
		capHint := len(req.Payload)
		if req.Size1 > 0 { // room for what the client announces, within reason and the budget
			capHint = max(min(int(req.Size1), block1FirstCap, t.maxBytes-t.bytes), capHint)
		}
		if t.bytes+capHint > t.maxBytes {
			t.lim.blockBytes.Inc()
			return busy("block-wise transfers hold too much memory; try again later"), nil
		}
		st = &block1State{key: k, body: make([]byte, 0, capHint), last: now}
		st.elem = t.lru.PushBack(st)
		t.m[k] = st
		t.perPeer[from]++
		t.perIP[from.Addr()]++
		t.bytes += cap(st.body)
	case st == nil:
		return NewMessage(RequestEntityIncomplete), nil
	case off == int64(len(st.body)):
		// the next block
	case off+int64(len(req.Payload)) == int64(len(st.body)) && b.More:
		// a re-sent copy of the previous block (an idempotent request re-processed): answer again
		t.touch(st, now)
		return continueFor(b, b.SZX), nil
	default:
		t.drop(k, st)
		return NewMessage(RequestEntityIncomplete), nil
	}
	before := cap(st.body)
	if grow := len(st.body) + len(req.Payload) - before; grow > 0 && t.bytes+max(grow, before) > t.maxBytes {
		// append would about double the buffer: refuse when that passes the budget
		t.lim.blockBytes.Inc()
		t.drop(k, st)
		return busy("block-wise transfers hold too much memory; try again later"), nil
	}
	st.body = append(st.body, req.Payload...)
	t.bytes += cap(st.body) - before
	t.touch(st, now)
	if !b.More {
		t.drop(k, st)
		return nil, st.body
	}
	szx := b.SZX
	if b.Num == 0 && prefSZX < szx {
		szx = prefSZX // ask for smaller blocks from now on (RFC 7959 §2.3)
	}
	return continueFor(b, szx), nil
}

func continueFor(b Block, szx uint8) *Message {
	r := NewMessage(Continue)
	r.Block1 = Block{Set: true, Num: b.Num, More: true, SZX: szx}
	return r
}

// sweep drops reassemblies idle since before cutoff.
func (t *block1Table) sweep(cutoff int64) {
	t.mu.Lock()
	t.expire(cutoff)
	t.mu.Unlock()
}

func (t *block1Table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sliceBlock2 answers the block of resp's payload that req asks for, if resp needs slicing.
// A response that already carries Block2 (a handler serving blocks itself) is sent as is, and so
// is any answer that is not 2.xx: an error is not a representation to cut into blocks (RFC 7959
// §2.2 numbers only the blocks of a representation), and a 5.03 with Max-Age or a 4.04 to a
// request for block 7 must reach the device as such, not as 4.02 for a block past the end. The
// result is a copy when it differs from resp; resp is never modified.
func sliceBlock2(req, resp *Message, prefSZX uint8) *Message {
	if resp.Block2.Set || !resp.Code.IsSuccess() {
		return resp
	}
	szx := prefSZX
	if req.Block2.Set && req.Block2.SZX < szx {
		szx = req.Block2.SZX
	}
	size := 16 << szx
	var num uint32
	if req.Block2.Set {
		num = req.Block2.Num
	}
	if !req.Block2.Set && len(resp.Payload) <= size {
		return resp
	}
	off := int64(num) * int64(size)
	if off > 0 && off >= int64(len(resp.Payload)) {
		r := NewMessage(BadOption)
		return r
	}
	end := min(off+int64(size), int64(len(resp.Payload)))
	out := *resp
	out.Payload = resp.Payload[off:end]
	out.Block2 = Block{Set: true, Num: num, More: end < int64(len(resp.Payload)), SZX: szx}
	if req.Size2 == 0 && out.Size2 < 0 { // RFC 7959 §4: the client asked for the total size
		out.Size2 = int64(len(resp.Payload))
	}
	return &out
}
