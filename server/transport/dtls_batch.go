package transport

import (
	"net"
	"net/netip"
)

// The demultiplexer's reads (issue 16). Every DTLS record a device sends is one datagram the
// demultiplexer reads before it can route it to its session; one recvfrom per datagram was
// about 1 µs of the server's CPU per Block2 block at 1,000 sessions. When datagrams queue up
// on the socket (many devices sending at once, which is when the CPU matters), one recvmmsg
// system call takes up to batchSize of them (dtls_batch_linux.go); elsewhere, and for a
// socket that is not a *net.UDPConn, datagramReader reads one at a time as before.

// batchSize is how many datagrams the demultiplexer takes from the socket in one read.
const batchSize = 8

// maxDatagram is the largest UDP payload: a read buffer of this size never truncates.
const maxDatagram = 1 << 16

// datagramReader hands the demultiplexer the socket's datagrams one at a time.
type datagramReader interface {
	// next returns the next datagram and its source address (unmapped; invalid if it was not
	// a UDP address). The datagram is valid until the following call.
	next() ([]byte, netip.AddrPort, error)
}

// singleReader reads one datagram per call (readDatagram).
type singleReader struct {
	pc  net.PacketConn
	buf []byte
}

func (r *singleReader) next() ([]byte, netip.AddrPort, error) {
	n, from, err := readDatagram(r.pc, r.buf) // dtls_record.go
	return r.buf[:n], from, err
}

// newDatagramReader reads pc in batches where it can (newBatchReader), else one at a time.
func newDatagramReader(pc net.PacketConn) datagramReader {
	if uc, ok := pc.(*net.UDPConn); ok {
		if r := newBatchReader(uc); r != nil {
			return r
		}
	}
	return &singleReader{pc: pc, buf: make([]byte, maxDatagram)}
}
