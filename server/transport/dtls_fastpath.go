package transport

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/dtls/v3"
)

// The DTLS record fast path (issue 16). A decrypted record used to cross four goroutines on its
// way to the Handler: the demultiplexer, pion's reader, the session's reader (dtlsLink.run) and
// the engine's reader (Endpoint.readLoop), then a worker; and it was copied three times after
// pion (into a record of its own, into the engine's buffer, and by pion's Read). The session's
// reader now reads pion's plaintext straight into one of the engine's pooled buffers and queues
// it for the workers itself, through the engine's sink: one goroutine hand-off and two copies
// fewer per record. The engine applies the same admission as to a datagram it reads (the source
// rate, the size limit) and the same bounded queue (a full queue drops the record, counted as
// queue_full; the device retransmits).

// datagramSink is the engine's side of a link whose own goroutines hand it datagrams.
type datagramSink interface {
	// buffer returns an engine buffer of MaxMessageSize+1 bytes to read a datagram into.
	buffer() *[]byte
	// deliver admits and queues the datagram (*bp)[:n] for a worker, exactly as the engine's
	// reader does with one it read itself, and takes bp back. overflow says what becomes of an
	// inline-safe request that finds the inline slots and the queue full: a session's own
	// goroutine runs it there (overflowHere); a socket reader, which serves every session
	// (dtls_direct.go), spills it (overflowSpill).
	deliver(bp *[]byte, n int, from netip.AddrPort, identity string, overflow overflowMode)
	// recycle takes back a buffer that was not delivered.
	recycle(bp *[]byte)
}

// pushLink is a link that delivers datagrams to a sink rather than returning them from readFrom.
// Once it has a sink, its readFrom returns no datagrams (it only waits for the link to close), so
// the engine's reader and the sink never admit datagrams at the same time.
type pushLink interface {
	setSink(datagramSink)
}

func (e *Endpoint) buffer() *[]byte    { return e.bufs.Get().(*[]byte) }
func (e *Endpoint) recycle(bp *[]byte) { e.bufs.Put(bp) }

func (e *Endpoint) deliver(bp *[]byte, n int, from netip.AddrPort, identity string, overflow overflowMode) {
	e.admitAndHandle(bp, n, from, identity, overflow)
}

// overflowMode is what admitAndHandle does with an inline-safe request that finds the inline
// slots taken and the workers' queue full.
type overflowMode uint8

const (
	// overflowSpill: queue it in Endpoint.spilled, else drop it (retransmitted): a reader of
	// a socket must not stay away (udp_inline.go, dtls_direct.go).
	overflowSpill overflowMode = iota
	overflowHere               // run it on the calling goroutine: a session's own
)

// admitAndHandle is deliver for a DTLS session's goroutine or a DTLS socket's reader, or for a
// reader of the engine's own socket; overflow says what becomes of an inline-safe request that
// finds the queue full.
func (e *Endpoint) admitAndHandle(bp *[]byte, n int, from netip.AddrPort, identity string, overflow overflowMode) {
	e.m.received.Inc()
	// Many session goroutines and socket readers deliver at once;
	// admit's source limiter is for one goroutine.
	e.admitMu.Lock()
	queue, refuse, maxAge, n := e.admit(n, from)
	e.admitMu.Unlock()
	if !queue {
		e.bufs.Put(bp)
		return
	}
	var f frame
	var decoded, safe bool
	if refuse == refuseNone {
		var handled bool
		if handled, f, decoded, safe = e.inline((*bp)[:n], from, identity); handled { // dtls_inline.go
			e.bufs.Put(bp)
			return
		}
	}
	select {
	case e.queue <- packet{buf: bp, n: n, f: f, decoded: decoded, from: from, identity: identity, refuse: refuse, maxAge: maxAge}:
	default:
		switch {
		case safe && overflow == overflowHere:
			e.inlineOverflow(f, from, identity) // rather than drop it (dtls_inline.go)
		case safe && overflow == overflowSpill && e.spill(f, from, identity): // udp_inline.go
		default:
			e.m.dropQueueFull.Inc()
		}
		e.bufs.Put(bp)
	}
}

// dtlsFastPath is a dtlsLink's part of the fast path: the engine's sink, set once by newEndpoint
// right after the link is made, so every session has it (dtlsLink.in and readFrom stay only to
// start the link and to wait), and the pool of inbound copies.
type dtlsFastPath struct {
	once sync.Once
	sink datagramSink
	// pool holds the copies the demultiplexer hands a session (its read buffer is reused for
	// the next datagram); the session's ReadFrom gives them back once pion has copied the
	// datagram. Buffers of up to inboundPooled bytes are kept; a larger datagram gets its own.
	pool sync.Pool
}

const inboundPooled = 2048

func (l *dtlsLink) setSink(s datagramSink) { l.fast.once.Do(func() { l.fast.sink = s }) }

// readSession hands the plaintext of an established session to the engine until conn ends: pion
// delivers it on its reader goroutine (dtls_record.go); Read here returns only what pion queued
// before that, and the end. vc is conn's sessionConn: not s.vc, which a session that went to sleep and woke
// up has replaced (dtls_idle.go).
func (l *dtlsLink) readSession(s *dtlsSession, vc *sessionConn, conn *dtls.Conn) {
	sink := l.fast.sink        // set by newEndpoint, before any session exists
	l.handRecords(s, vc, conn) // from now on pion delivers on its reader (dtls_record.go)
	for {
		bp := sink.buffer()
		n, err := conn.Read(*bp)
		if err != nil {
			sink.recycle(bp)
			var te *dtls.TemporaryError
			if errors.As(err, &te) && s.ctx.Err() == nil {
				continue // a record larger than MaxMessageSize: dropped
			}
			return
		}
		if l.dc.ConnectionID {
			l.follow(s, vc, conn)
		}
		l.mu.Lock()
		from, identity := s.addr, s.identity
		l.mu.Unlock()
		sink.deliver(bp, n, from, identity, overflowHere)
	}
}

// inbound copies p, a datagram from the demultiplexer's read buffer, for a session.
func (f *dtlsFastPath) inbound(p []byte, from netip.AddrPort) inbound {
	if len(p) > inboundPooled {
		return inbound{b: append([]byte(nil), p...), from: from}
	}
	bp, _ := f.pool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, inboundPooled)
		bp = &b
	}
	*bp = append((*bp)[:0], p...)
	return inbound{b: *bp, from: from, pooled: bp}
}

// release takes back the buffer of a datagram pion has copied.
func (f *dtlsFastPath) release(in inbound) {
	if in.pooled != nil {
		f.pool.Put(in.pooled)
	}
}

// lastUDPAddr is the *net.UDPAddr of the last datagram a session read: one per address rather
// than two allocations per datagram. pion compares it with the connection's remote address to
// notice a connection-id peer that moved, so a new address still gets a new value.
type lastUDPAddr struct {
	mu   sync.Mutex
	ap   netip.AddrPort
	addr *net.UDPAddr
}

func (c *sessionConn) udpAddr(ap netip.AddrPort) *net.UDPAddr {
	c.addr.mu.Lock()
	defer c.addr.mu.Unlock()
	if c.addr.addr == nil || c.addr.ap != ap {
		c.addr.ap, c.addr.addr = ap, net.UDPAddrFromAddrPort(ap)
	}
	return c.addr.addr
}
