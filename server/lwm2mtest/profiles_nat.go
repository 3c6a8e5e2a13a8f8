package lwm2mtest

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ProfileNATRebinding is the device profile of a DTLS client behind a NAT that rebinds in the
// middle of a download: the client uses the server's connection id (RFC 9146), and after
// NATRebindAfterBlocks blocks of a coaps:// pull its datagrams leave from a new source port,
// within the same DTLS session. Behind a load balancer that hashes the source address and
// port, the new port usually lands on another node. Apply it with ApplyProfileNATRebinding;
// the device also needs PSKIdentity and PSK.
const ProfileNATRebinding = "nat-rebinding"

// NATRebindAfterBlocks is when ProfileNATRebinding moves the pull's socket, unless
// RebindAfterBlocks is already set.
const NATRebindAfterBlocks = 3

// ApplyProfileNATRebinding returns cfg with the ProfileNATRebinding habit.
func ApplyProfileNATRebinding(cfg DeviceConfig) DeviceConfig {
	cfg.ConnectionID = true
	if cfg.RebindAfterBlocks <= 0 {
		cfg.RebindAfterBlocks = NATRebindAfterBlocks
	}
	return cfg
}

// rebindingConn is the device's UDP socket behind a NAT that can rebind: rebind opens a new
// socket (a new source port) and closes the old one, as the NAT forgets the old mapping;
// reads and writes continue on the new socket under the same DTLS session.
type rebindingConn struct {
	mu     sync.Mutex
	cur    *net.UDPConn
	rd, wd time.Time
	closed bool
}

var errRebindClosed = errors.New("lwm2mtest: rebind: socket closed")

func (c *rebindingConn) sock() *net.UDPConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// rebind moves the socket to a new local port on the same address.
func (c *rebindingConn) rebind() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errRebindClosed
	}
	la, _ := c.cur.LocalAddr().(*net.UDPAddr)
	next, err := net.ListenUDP("udp", &net.UDPAddr{IP: la.IP, Zone: la.Zone})
	if err != nil {
		return err
	}
	_ = next.SetReadDeadline(c.rd)
	_ = next.SetWriteDeadline(c.wd)
	old := c.cur
	c.cur = next
	return old.Close() // a reader blocked on it goes on with the new socket
}

func (c *rebindingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		s := c.sock()
		n, from, err := s.ReadFrom(b)
		if err != nil && c.sock() != s {
			continue // rebound while reading
		}
		return n, from, err
	}
}

func (c *rebindingConn) WriteTo(b []byte, to net.Addr) (int, error) { return c.sock().WriteTo(b, to) }

func (c *rebindingConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.cur.Close()
}

func (c *rebindingConn) LocalAddr() net.Addr { return c.sock().LocalAddr() }

func (c *rebindingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd, c.wd = t, t
	return c.cur.SetDeadline(t)
}

func (c *rebindingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	return c.cur.SetReadDeadline(t)
}

func (c *rebindingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = t
	return c.cur.SetWriteDeadline(t)
}
