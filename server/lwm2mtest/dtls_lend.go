//go:build unix

package lwm2mtest

import (
	"errors"
	"net"
	"sync"
	"syscall"

	piondtlsnet "github.com/pion/dtls/v3/pkg/net"
)

// A load device's socket lends pion the datagrams it reads (pion patch 37, dtls.DatagramLender).
// pion's reader goroutine waits for the server's next datagram for the whole run, and through
// ReadFrom it waits holding an 8 KiB read buffer of its own: at 1,000 devices 8 MiB of the
// devices' process's live heap (about 40% of it), marked at every collection, for buffers
// that hold nothing. Here the reader waits for the socket to be readable with no buffer
// (syscall.RawConn's Read), and only then takes one from a pool, reads into it, and lends it
// to pion until pion's next read: a device holds a buffer only while it processes a datagram.

// lendBufSize is pion's own read buffer size: a datagram is never cut shorter than pion would.
const lendBufSize = 8192

// lendBufs are the buffers of the datagrams the devices lend pion.
var lendBufs = sync.Pool{New: func() any { b := make([]byte, lendBufSize); return &b }}

// lendingConn is a connected UDP socket as pion's PacketConnFromConn wraps it, whose reads lend.
type lendingConn struct {
	net.PacketConn // PacketConnFromConn(uc): ReadFrom, WriteTo and the rest
	uc             *net.UDPConn
	rc             syscall.RawConn
	read           func(fd uintptr) bool // c.readFD, made once

	// Only pion's reader reads, one call at a time: what follows is its own.
	lent *[]byte // the buffer of the datagram lent last, back to lendBufs at the next read
	n    int
	err  error
}

// lendingPacketConn wraps the connected socket uc for pion: a lendingConn where the platform
// lets it wait for a readable socket, PacketConnFromConn otherwise.
func lendingPacketConn(uc *net.UDPConn) net.PacketConn {
	pc := piondtlsnet.PacketConnFromConn(uc)
	rc, err := uc.SyscallConn()
	if err != nil {
		return pc
	}
	c := &lendingConn{PacketConn: pc, uc: uc, rc: rc}
	c.read = c.readFD
	return c
}

// ReadDatagram waits for the socket to be readable, then reads the datagram into a pooled
// buffer lent to pion until its next call.
func (c *lendingConn) ReadDatagram() ([]byte, net.Addr, error) {
	if c.lent != nil {
		lendBufs.Put(c.lent)
		c.lent = nil
	}
	c.n, c.err = 0, nil
	if err := c.rc.Read(c.read); err != nil { // the read deadline or Close
		return nil, nil, err
	}
	if c.err != nil {
		return nil, nil, &net.OpError{Op: "read", Net: "udp", Source: c.uc.LocalAddr(), Addr: c.uc.RemoteAddr(), Err: c.err}
	}
	return (*c.lent)[:c.n], c.uc.RemoteAddr(), nil
}

// readFD is RawConn.Read's callback: it reads a datagram that is there, or asks to wait (false).
func (c *lendingConn) readFD(fd uintptr) bool {
	bp := lendBufs.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *bp)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			lendBufs.Put(bp)
			return false
		case err != nil:
			lendBufs.Put(bp)
			c.err = err
			return true
		}
		c.lent, c.n = bp, n
		return true
	}
}
