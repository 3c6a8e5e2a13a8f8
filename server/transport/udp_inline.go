package transport

import "net/netip"

// Inline handling on a plain UDP socket (issue 16). A datagram used to cross one goroutine
// hand-off on its way to the Handler: the engine's reader queued it and a parked worker was woken
// to decode and answer it. At thousands of firmware blocks a second that wake-up (the
// scheduler's and the futex's time) cost as much as the handling. The reader now treats a datagram
// as a DTLS session treats a record (dtls_inline.go): an ACK, RST or ping, and a request whose
// Handler vouches for it (InlineHandler: lwota's firmware Block2 server), is decoded and answered
// on the reader's own goroutine, at most Config.Workers at once; everything else is queued for
// the workers, decoded already, as before.
//
// A reader busy answering cannot read, so plainReaders goroutines read the socket and at most
// plainReaders-1 of them answer inline at a time: however long inline handlers wait on storage
// (a cold image chunk from S3, a grant from the database), one reader is always reading, and a
// request that finds the others busy goes to the workers' queue (a reader never answers past the
// limit as a DTLS session may). The socket's reads are serialised by the runtime, so
// two readers cost no more system calls than one; admission (the source limiter, which is for one
// goroutine) runs under Endpoint.admitMu, uncontended unless the readers meet there.
//
// An inline-safe request that finds the queue full as well spills into a second queue for the
// workers (spill), Config.QueueSize long, which holds the request decoded (its datagram buffer
// goes back to the pool at once); beyond that it is dropped as queue_full. Dropped, it locked
// its device out: with more devices pulling at once than the queue holds (1,000 against
// 64*Workers = 512 on two cores), the server is the bottleneck and the devices it answers refill
// the queue as soon as a worker takes a request, so a dropped device's retransmission a second
// later found it full again, and the next one two seconds later. In lwota bench pull at 1,000
// devices a tenth of the devices got 1-65 blocks in a 4 s slot while the median device got
// 118-157. The second queue is for inline-safe requests only, which wait on nothing the device
// does, so it adds no waiting behind slow handlers (registrations) to the workers' queue; the
// DTLS path answers the same overflow on the record's own goroutine (dtls_fastpath.go).

// plainReaders is the number of goroutines reading a UDP socket.
const plainReaders = 3

// spilledRequest is an inline-safe request waiting in Endpoint.spilled.
type spilledRequest struct {
	f        frame
	from     netip.AddrPort
	identity string
}

// spill queues f, an inline-safe request from (with identity) that found the inline readers at
// their limit and the workers' queue full, for the workers in Endpoint.spilled, and reports
// whether there was room.
func (e *Endpoint) spill(f frame, from netip.AddrPort, identity string) bool {
	select {
	case e.spilled <- spilledRequest{f: f, from: from, identity: identity}:
		return true
	default:
		return false
	}
}
