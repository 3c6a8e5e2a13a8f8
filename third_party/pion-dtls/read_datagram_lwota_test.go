// SPDX-FileCopyrightText: 2026 The Pion community <https://pion.ly>
// SPDX-License-Identifier: MIT

package dtls

// Tests of lwota patch 37 (LWOTA-PATCHES.md): a PacketConn that lends its datagrams, so that
// a waiting reader holds no read buffer.

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// lendPipe is one end of an in-memory datagram pipe that lends what it reads (a
// DatagramLender): a datagram written to one end is a new slice queued for the other, which
// ReadDatagram returns as it is and ReadFrom copies. Nothing holds a buffer while a reader
// waits. The last datagram lent is kept in lent, for the test to see what Conn did with it.
type lendPipe struct {
	in, out chan []byte
	local   net.Addr

	closeOnce sync.Once
	closed    chan struct{}

	// drop, when set, drops the datagrams written to this end for which it returns true.
	drop func([]byte) bool

	mu      sync.Mutex
	expired chan struct{} // closed while the read deadline has passed
	timer   *time.Timer
	lent    []byte
}

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

func newLendPipe() (*lendPipe, *lendPipe) {
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	a := &lendPipe{in: ba, out: ab, local: pipeAddr("a"), closed: make(chan struct{}), expired: make(chan struct{})}
	b := &lendPipe{in: ab, out: ba, local: pipeAddr("b"), closed: make(chan struct{}), expired: make(chan struct{})}

	return a, b
}

func (p *lendPipe) ReadDatagram() ([]byte, net.Addr, error) {
	p.mu.Lock()
	expired := p.expired
	p.mu.Unlock()
	select {
	case b := <-p.in:
		p.mu.Lock()
		p.lent = b
		p.mu.Unlock()

		return b, pipeAddr("peer"), nil
	case <-p.closed:
		return nil, nil, net.ErrClosed
	case <-expired:
		return nil, nil, errDeadlineExceeded
	}
}

func (p *lendPipe) ReadFrom(b []byte) (int, net.Addr, error) {
	d, addr, err := p.ReadDatagram()

	return copy(b, d), addr, err
}

func (p *lendPipe) WriteTo(b []byte, _ net.Addr) (int, error) {
	if p.drop != nil && p.drop(b) {
		return len(b), nil
	}
	select {
	case p.out <- bytes.Clone(b):
		return len(b), nil
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

func (p *lendPipe) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })

	return nil
}

func (p *lendPipe) LocalAddr() net.Addr              { return p.local }
func (p *lendPipe) SetDeadline(t time.Time) error    { return p.SetReadDeadline(t) }
func (p *lendPipe) SetWriteDeadline(time.Time) error { return nil }
func (p *lendPipe) SetReadDeadline(t time.Time) error { //nolint:varnamelen
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	select {
	case <-p.expired:
		p.expired = make(chan struct{})
	default:
	}
	switch d := time.Until(t); {
	case t.IsZero():
	case d <= 0:
		close(p.expired)
	default:
		expired := p.expired
		p.timer = time.AfterFunc(d, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.expired == expired {
				close(expired)
			}
		})
	}

	return nil
}

// plainPipe is a lendPipe that Conn can only read through ReadFrom.
type plainPipe struct{ net.PacketConn }

// lendPair handshakes a PSK client and server over a lendPipe pair; with plain, Conn sees only
// the net.PacketConn of each end.
func lendPair(t *testing.T, plain bool) (*Conn, *Conn, *lendPipe, *lendPipe) {
	t.Helper()
	pa, pb := newLendPipe()

	return lendPairOver(t, pa, pb, plain)
}

// lendPairOver is lendPair over the ends pa (the client's) and pb (the server's).
func lendPairOver(t *testing.T, pa, pb *lendPipe, plain bool) (*Conn, *Conn, *lendPipe, *lendPipe) {
	t.Helper()
	var ca, cb net.PacketConn = pa, pb
	if plain {
		ca, cb = plainPipe{pa}, plainPipe{pb}
	}
	psk := func([]byte) ([]byte, error) { return []byte("lwota-test-psk-0123456789abcdef0"), nil }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		c   *Conn
		err error
	}
	clientc := make(chan result, 1)
	go func() {
		client, err := ClientWithOptions(ca, pipeAddr("b"), WithFlightInterval(100*time.Millisecond),
			WithPSK(psk), WithPSKIdentityHint([]byte("test")), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
		if err == nil {
			err = client.HandshakeContext(ctx)
		}
		clientc <- result{client, err}
	}()
	server, err := ServerWithOptions(cb, pipeAddr("a"), WithPSK(psk), WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8))
	if err == nil {
		err = server.HandshakeContext(ctx)
	}
	res := <-clientc
	if err != nil || res.err != nil {
		t.Fatalf("handshake: server %v, client %v", err, res.err)
	}

	return res.c, server, pa, pb
}

// TestLentDatagrams: a Conn over a DatagramLender reads through ReadDatagram (it decrypts the
// lent datagram in place, so the record's plaintext is found in it), records reach the peer's
// Read, and Close ends a reader waiting in ReadDatagram. Fails without the patch: Conn reads
// through ReadFrom into a buffer of its own and leaves the lent datagram encrypted.
func TestLentDatagrams(t *testing.T) {
	client, server, _, pb := lendPair(t, false)
	msg := []byte("a record decrypted where it was lent")
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := server.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("server read %q, %v; want %q", buf[:n], err, msg)
	}
	pb.mu.Lock()
	lent := pb.lent
	pb.mu.Unlock()
	if !bytes.Contains(lent, msg) {
		t.Fatalf("the datagram lent to the server does not hold the plaintext: it read a copy, not the lent datagram")
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- server.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("server Close did not return: its reader still waits in ReadDatagram")
	}
}

// lendPairs is how many connection pairs TestLentDatagramsHoldNoReadBuffer opens per kind.
const lendPairs = 40

// TestLentDatagramsHoldNoReadBuffer: established connections waiting for their next datagram
// hold 8 KiB each less live heap over a DatagramLender than over a plain PacketConn (the read
// buffer their readers wait with); the test wants 6 KiB per connection. Without the patch both
// kinds read through ReadFrom and hold the same.
func TestLentDatagramsHoldNoReadBuffer(t *testing.T) {
	perConn := func(plain bool) int64 {
		before := liveHeap()
		conns := make([]*Conn, 0, 2*lendPairs)
		for range lendPairs {
			c, s, _, _ := lendPair(t, plain)
			conns = append(conns, c, s)
		}
		held := (liveHeap() - before) / int64(len(conns))
		for _, c := range conns {
			_ = c.Close()
		}
		runtime.KeepAlive(conns)

		return held
	}
	perConn(false) // warm up: the runtime keeps goroutine descriptors and pools across the runs
	plain, lent := perConn(true), perConn(false)
	t.Logf("live heap per established connection: %d B reading through ReadFrom, %d B through ReadDatagram", plain, lent)
	if plain-lent < 6<<10 {
		t.Fatalf("a connection over a DatagramLender holds %d B, over ReadFrom %d B: want at least 6 KiB less", lent, plain)
	}
}

// liveHeap is the live heap after two collections (the second empties sync.Pool's victim
// caches).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)

	return int64(m.HeapAlloc)
}
