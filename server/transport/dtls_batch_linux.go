package transport

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader reads up to batchSize datagrams per recvmmsg(2) and hands them out one at a time.
// It waits for the socket through the runtime's poller (syscall.RawConn.Read), like the
// socket's own reads, so read deadlines and Close interrupt it the same way.
type batchReader struct {
	rc    syscall.RawConn
	local net.Addr
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6 // large enough for either family
	bufs  [batchSize][]byte

	n, at int // datagrams the last recvmmsg returned, and the next one to hand out
	// recv is the recvmmsg attempt rc.Read runs, made once: a closure per read would be
	// allocated, as rc.Read's argument escapes.
	recv  func(fd uintptr) bool
	errno syscall.Errno // recv's result, besides n
}

// newBatchReader returns a batchReader for uc, or nil when uc gives no raw access.
func newBatchReader(uc *net.UDPConn) *batchReader {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &batchReader{rc: rc, local: uc.LocalAddr()}
	// One allocation for all buffers; each slot can take the largest UDP payload (the pages a
	// slot never fills are never touched).
	arena := make([]byte, batchSize*maxDatagram)
	for i := range r.hdrs {
		r.bufs[i] = arena[i*maxDatagram : (i+1)*maxDatagram : (i+1)*maxDatagram]
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(maxDatagram)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	r.recv = r.recvmmsg
	return r
}

// recvmmsg is one non-blocking recvmmsg(2) on fd; it returns false (wait for the socket) only
// when nothing is queued.
func (r *batchReader) recvmmsg(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), errno
		return true
	}
}

func (r *batchReader) next() ([]byte, netip.AddrPort, error) {
	if r.at >= r.n {
		r.at, r.n = 0, 0
		if err := r.rc.Read(r.recv); err != nil {
			return nil, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: err}
		}
		if r.errno != 0 {
			return nil, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.local, Err: os.NewSyscallError("recvmmsg", r.errno)}
		}
	}
	i := r.at
	r.at++
	return r.bufs[i][:r.hdrs[i].Len], sockaddrAddrPort(&r.names[i], r.hdrs[i].Hdr.Namelen), nil
}

// sockaddrAddrPort is the unmapped address and port of a socket address the kernel wrote into
// sa (namelen bytes); invalid if it is not an IPv4 or IPv6 address.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, namelen uint32) netip.AddrPort {
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(raw[2:4]) // sin_port and sin6_port: network byte order
	switch {
	case sa.Family == unix.AF_INET && namelen >= unix.SizeofSockaddrInet4:
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(v4.Addr), port)
	case sa.Family == unix.AF_INET6 && namelen >= unix.SizeofSockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			ip = ip.WithZone(zoneName(int(sa.Scope_id)))
		}
		return unmap(netip.AddrPortFrom(ip, port))
	}
	return netip.AddrPort{}
}

// zoneName is the interface name net gives an IPv6 zone index (its number if it has none).
func zoneName(index int) string {
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(index)
}
