package transport

import (
	"net/netip"
	"strings"
	"sync"
)

// Server-side block-wise transfers (RFC 7959).
//
// Block2: responses are sliced statelessly. The handler runs again for every block request
// and the transport answers the requested slice of its payload; nothing is kept between blocks.
//
// Block1: request bodies are reassembled in a bounded table keyed by (peer address, method,
// path and query) — not by token, since real clients use a new token per block. The handler
// runs once, with the whole body.

// block1Key identifies one incoming Block1 transfer.
type block1Key struct {
	peer netip.AddrPort
	code Code
	uri  string
}

type block1State struct {
	body []byte
	last int64 // when the last block arrived
}

type block1Table struct {
	mu      sync.Mutex
	m       map[block1Key]*block1State
	max     int
	maxBody int
}

func newBlock1Table(maxPending, maxBody int) *block1Table {
	return &block1Table{m: make(map[block1Key]*block1State), max: maxPending, maxBody: maxBody}
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
		t.mu.Lock()
		delete(t.m, block1Key{from, req.Code, requestURI(req)})
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
		if st == nil && len(t.m) >= t.max {
			return NewMessage(ServiceUnavailable), nil
		}
		capHint := len(req.Payload)
		if req.Size1 > 0 {
			capHint = int(req.Size1)
		}
		st = &block1State{body: make([]byte, 0, capHint)}
		t.m[k] = st
	case st == nil:
		return NewMessage(RequestEntityIncomplete), nil
	case off == int64(len(st.body)):
		// the next block
	case off+int64(len(req.Payload)) == int64(len(st.body)) && b.More:
		// a re-sent copy of the previous block (an idempotent request re-processed): answer again
		st.last = now
		return continueFor(b, b.SZX), nil
	default:
		delete(t.m, k)
		return NewMessage(RequestEntityIncomplete), nil
	}
	st.body = append(st.body, req.Payload...)
	st.last = now
	if !b.More {
		delete(t.m, k)
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
	for k, st := range t.m {
		if st.last < cutoff {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}

func (t *block1Table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sliceBlock2 answers the block of resp's payload that req asks for, if resp needs slicing.
// A response that already carries Block2 (a handler serving blocks itself) is sent as is.
// The result is a copy when it differs from resp; resp is never modified.
func sliceBlock2(req, resp *Message, prefSZX uint8) *Message {
	if resp.Block2.Set {
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
