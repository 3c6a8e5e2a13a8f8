package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recordingSink is a datagramSink that hands every delivered datagram to a channel.
type recordingSink struct {
	size int
	got  chan delivered
}

type delivered struct {
	b        []byte
	from     netip.AddrPort
	identity string
}

func (s *recordingSink) buffer() *[]byte { b := make([]byte, s.size); return &b }
func (s *recordingSink) recycle(*[]byte) {}
func (s *recordingSink) deliver(bp *[]byte, n int, from netip.AddrPort, identity string, _ overflowMode) {
	s.got <- delivered{b: (*bp)[:n], from: from, identity: identity}
}

// TestDTLSFastPathDeliversToSink: a session's plaintext goes straight from the session's reader
// to the engine's sink, with the peer's address and PSK identity, not through readFrom.
func TestDTLSFastPathDeliversToSink(t *testing.T) {
	checkLeaks(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := testConfig().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	dc, err := DTLSConfig{PSK: testKeys}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	l, err := newDTLSLink(pc, cfg, dc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{size: cfg.MaxMessageSize + 1, got: make(chan delivered, 1)}
	l.setSink(sink)
	l.start()
	defer l.close()

	to := Addr{Network: DTLS, AddrPort: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	c, err := dialDTLS(t, to, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("a CoAP datagram")); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-sink.got:
		want := unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
		if string(d.b) != "a CoAP datagram" || d.from != want || d.identity != "dev1" {
			t.Fatalf("delivered %q from %v as %q, want %q from %v as dev1", d.b, d.from, d.identity, "a CoAP datagram", want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the record never reached the sink")
	}
}

// TestDeliverQueueFull: a datagram delivered while the engine's queue is full is dropped and
// counted as queue_full, as one the engine's reader read would be; its buffer goes back.
func TestDeliverQueueFull(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Workers, cfg.QueueSize = 1, 1
	reg := prometheus.NewRegistry()
	e, err := New(pc, UDP, nil, cfg, nil, reg) // not serving: nothing takes from the queue
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	from := netip.MustParseAddrPort("127.0.0.1:5683")
	for range 3 {
		bp := e.buffer()
		n := copy(*bp, datagram(t, typeCON, 1, req(GET, "/fw")))
		e.deliver(bp, n, from, "dev1", overflowHere)
	}
	if got := testutil.ToFloat64(e.m.dropQueueFull); got != 2 {
		t.Fatalf("queue_full drops = %v, want 2 (queue of 1, 3 delivered)", got)
	}
	if got := testutil.ToFloat64(e.m.received); got != 3 {
		t.Fatalf("received = %v, want 3", got)
	}
	p := <-e.queue
	if p.from != from || p.identity != "dev1" || p.refuse != refuseNone {
		t.Fatalf("queued %+v", p)
	}
}

// TestSessionConnReadAllocations: handing a datagram from the demultiplexer to pion allocates
// nothing (before: a copy per datagram and two for its address, then the idle signal of the
// connection-id code, made at each read until it was made only for a settle that waits), and
// the address pion gets changes only when the peer's does.
func TestSessionConnReadAllocations(t *testing.T) {
	l := &dtlsLink{}
	c := &sessionConn{l: l, sessionRx: sessionRx{rx: make(chan inbound, 1), entered: make(chan struct{})}}
	c.state.Store(rxWaited)
	from := netip.MustParseAddrPort("192.0.2.1:5684")
	datagram := make([]byte, 1100)
	buf := make([]byte, 2048)
	read := func() *net.UDPAddr {
		c.rx <- l.fast.inbound(datagram, from)
		n, addr, err := c.ReadFrom(buf)
		if err != nil || n != len(datagram) {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
		return addr.(*net.UDPAddr)
	}
	first := read()
	if allocs := testing.AllocsPerRun(100, func() { read() }); allocs > 0 {
		t.Fatalf("%v allocations per datagram, want 0", allocs)
	}
	if again := read(); again != first {
		t.Fatal("a new *net.UDPAddr for the same peer address")
	}
	from = netip.MustParseAddrPort("192.0.2.1:6000")
	if moved := read(); moved == first || moved.AddrPort() != from {
		t.Fatalf("after the peer moved ReadFrom says %v, want a new %v", moved, from)
	}
}
