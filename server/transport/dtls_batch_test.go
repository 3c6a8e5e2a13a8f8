package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// queueDatagrams sends msgs[i] from clients[i%len(clients)]; on loopback each is queued on the
// receiving socket when Write returns.
func queueDatagrams(t *testing.T, clients []*net.UDPConn, msgs [][]byte) {
	t.Helper()
	for i, m := range msgs {
		if _, err := clients[i%len(clients)].Write(m); err != nil {
			t.Fatal(err)
		}
	}
}

// dialUDP is a client socket of network connected to to.
func dialUDP(t *testing.T, network string, to *net.UDPConn) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP(network, nil, to.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Skipf("%s loopback: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDatagramReaderBatches: the demultiplexer's reader takes the datagrams queued on lwota's
// socket in one system call (recvmmsg) and hands each out with its own sender, unmapped, and
// whole (a 60,000-byte datagram is not truncated). It proves the one call by closing the socket
// after the first datagram: the rest still come, from the batch already read; a reader that
// reads one datagram per call (before) gets the socket's close error instead.
func TestDatagramReaderBatches(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("recvmmsg is Linux's")
	}
	for _, tc := range []struct {
		name, listen, dial string
	}{
		{"ipv4", "udp4", "udp4"},
		{"ipv6 socket, ipv4 senders", "udp", "udp4"},
		{"ipv6", "udp6", "udp6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			laddr := "127.0.0.1:0"
			switch {
			case tc.listen == "udp6":
				laddr = "[::1]:0"
			case tc.listen == "udp":
				laddr = ":0"
			}
			ua, err := net.ResolveUDPAddr(tc.listen, laddr)
			if err != nil {
				t.Fatal(err)
			}
			server, err := net.ListenUDP(tc.listen, ua)
			if err != nil {
				t.Skipf("%s: %v", tc.listen, err)
			}
			defer server.Close()
			to := server.LocalAddr().(*net.UDPAddr)
			if tc.listen == "udp" { // the dual-stack wildcard socket, reached on IPv4 loopback
				to = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: to.Port}
			}
			var clients []*net.UDPConn
			for range 2 {
				c, err := net.DialUDP(tc.dial, nil, to)
				if err != nil {
					t.Skipf("%s: %v", tc.dial, err)
				}
				t.Cleanup(func() { c.Close() })
				clients = append(clients, c)
			}
			var msgs [][]byte
			for i := range batchSize - 1 {
				msgs = append(msgs, fmt.Appendf(nil, "record %d", i))
			}
			msgs[3] = bytes.Repeat([]byte{'x'}, 60000)
			queueDatagrams(t, clients, msgs)

			r := newDatagramReader(server)
			if _, ok := r.(*batchReader); !ok {
				t.Fatalf("reader of a *net.UDPConn is a %T, want a *batchReader", r)
			}
			for i, m := range msgs {
				p, from, err := r.next()
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				want := clients[i%len(clients)].LocalAddr().(*net.UDPAddr).AddrPort()
				want = unmap(want)
				if !bytes.Equal(p, m) || from != want {
					t.Fatalf("datagram %d = %d bytes %.20q from %v; want %d bytes %.20q from %v", i, len(p), p, from, len(m), m, want)
				}
				if i == 0 {
					server.Close() // what follows was read by the first call, or never
				}
			}
			if _, _, err := r.next(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("next after the batch on a closed socket: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestDatagramReaderDeadline: a read deadline interrupts the batch reader's wait with a timeout
// error, as it did the single read (the demultiplexer goes on reading after a timeout), and the
// reader still reads afterwards.
func TestDatagramReaderDeadline(t *testing.T) {
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	r := newDatagramReader(server)
	if err := server.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, _, err = r.next()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("next past the deadline: %v, want a timeout", err)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := dialUDP(t, "udp4", server)
	queueDatagrams(t, []*net.UDPConn{c}, [][]byte{[]byte("after")})
	p, from, err := r.next()
	if err != nil || string(p) != "after" || from != c.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("next = %q from %v, %v", p, from, err)
	}
}

// TestDatagramReaderAllocations: reading a datagram through the batch reader allocates
// nothing (as readDatagram, TestReadDatagramAllocations).
func TestDatagramReaderAllocations(t *testing.T) {
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	c := dialUDP(t, "udp4", server)
	want := c.LocalAddr().(*net.UDPAddr).AddrPort()
	r := newDatagramReader(server)
	read := func() {
		if _, err := c.Write([]byte("a record")); err != nil {
			t.Fatal(err)
		}
		p, from, err := r.next()
		if err != nil || string(p) != "a record" || from != want {
			t.Fatalf("next = %q from %v, %v", p, from, err)
		}
	}
	read()
	if raceEnabled {
		return // the race detector allocates in the read itself
	}
	if allocs := testing.AllocsPerRun(100, read); allocs > 0 {
		t.Fatalf("%v allocations per datagram read, want none", allocs)
	}
}
