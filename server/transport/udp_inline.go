package transport

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
// request that finds the others busy goes to the workers' queue (dropped if that is full: the
// device retransmits; a reader never answers past the limit as a DTLS session may). The socket's reads are serialised by the runtime, so
// two readers cost no more system calls than one; admission (the source limiter, which is for one
// goroutine) runs under Endpoint.admitMu, uncontended unless the readers meet there.

// plainReaders is the number of goroutines reading a UDP socket.
const plainReaders = 3
