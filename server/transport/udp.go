package transport

import (
	"net"
	"net/netip"
)

// link is the seam between the engine and a network: read one datagram from a peer, write one
// datagram to a peer. udpLink serves plain UDP over one socket; the DTLS link (dtls.go) fans in its
// per-peer connections behind the same four methods, so the engine never knows which it drives.
type link interface {
	// readFrom reads one datagram into b. n may exceed len(b) only as len(b) (truncated); the
	// engine sizes b one byte beyond MaxMessageSize to tell oversize datagrams apart. The engine
	// calls it from plainReaders goroutines at once unless the link is a pushLink.
	readFrom(b []byte) (n int, from netip.AddrPort, identity string, err error)
	// writeTo sends one datagram.
	writeTo(b []byte, to netip.AddrPort) error
	localAddr() net.Addr
	close() error
}

// udpLink is a link over one UDP socket.
type udpLink struct {
	pc  net.PacketConn
	udp *net.UDPConn // pc, when it is a *net.UDPConn: allocation-free reads and writes
}

func newUDPLink(pc net.PacketConn) *udpLink {
	l := &udpLink{pc: pc}
	l.udp, _ = pc.(*net.UDPConn)
	return l
}

func (l *udpLink) readFrom(b []byte) (int, netip.AddrPort, string, error) {
	if l.udp != nil {
		n, ap, err := l.udp.ReadFromUDPAddrPort(b)
		return n, unmap(ap), "", err
	}
	n, addr, err := l.pc.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, "", err
	}
	var ap netip.AddrPort
	if ua, ok := addr.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
		return 0, netip.AddrPort{}, "", nil // not an IP peer: skip the datagram
	}
	return n, unmap(ap), "", nil
}

func (l *udpLink) writeTo(b []byte, to netip.AddrPort) error {
	if l.udp != nil {
		_, err := l.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := l.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (l *udpLink) localAddr() net.Addr { return l.pc.LocalAddr() }
func (l *udpLink) close() error        { return l.pc.Close() }

// unmap turns an IPv4-mapped IPv6 sender (dual-stack sockets) into plain IPv4, so one device
// has one Addr whichever socket it reached.
func unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
