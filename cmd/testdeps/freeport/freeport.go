// Package freeport finds loopback ports below the kernel's ephemeral range, for a test's
// service that must come back on the same port after a restart.
package freeport

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// BelowEphemeral returns a loopback address ("127.0.0.1:port") that listen could take now,
// below the kernel's ephemeral port range. A port from that range, freed when a service stops,
// can be handed to any socket bound to port 0 on a busy machine before the service comes back;
// nothing takes a port below the range unless asked for it by number.
func BelowEphemeral(listen func(addr string) (io.Closer, error)) (string, error) {
	lo := 32768 // Linux's default first ephemeral port
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	const from = 10000
	if lo <= from+1000 {
		return "", errors.New("freeport: ephemeral ports start at " + strconv.Itoa(lo) + ": no room below them")
	}
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(from+rand.IntN(lo-from)))
		l, err := listen(addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr, nil
	}
	return "", errors.New("freeport: no free loopback port below the ephemeral range after 1,000 tries")
}

// UDP is BelowEphemeral for a UDP port.
func UDP() (string, error) {
	return BelowEphemeral(func(addr string) (io.Closer, error) { return net.ListenPacket("udp", addr) })
}

// TCP is BelowEphemeral for a TCP port.
func TCP() (string, error) {
	return BelowEphemeral(func(addr string) (io.Closer, error) { return net.Listen("tcp", addr) })
}
