package transport

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDTLSRecordOnSocketReader: an established session's record reaches an inline handler on
// the socket reader that read it, decrypted there by pion (Conn.HandleApplicationDataFunc,
// lwota patches 33 and 39; dtls_direct.go), through the reader's handler (dtls_record.go): not
// on pion's reader goroutine, which a demultiplexer woke for every record (a goroutine hand-off
// and, at 1,000 sessions, a cold stack), nor through Read on the session's goroutine
// (readSession), which cost another hand-off and a copy.
func TestDTLSRecordOnSocketReader(t *testing.T) {
	stacks := make(chan string, 2)
	h := Inline(HandlerFunc(func(_ context.Context, _ Peer, _ *Message) *Message {
		buf := make([]byte, 64<<10)
		stacks <- string(buf[:runtime.Stack(buf, false)])
		return NewMessage(Content)
	}))
	te, _ := startDTLSWith(t, h, testConfig(), DTLSConfig{})
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	// The last request is the one checked: a record that arrives as the handshake ends may
	// take the session's path, before the session is marked established (or be queued for
	// Read before the session sets the handler: readSession then delivers it).
	var stack string
	for mid := uint16(1); mid <= 3; mid++ {
		if _, err := c.Write(datagram(t, typeCON, mid, req(GET, "/fw"))); err != nil {
			t.Fatal(err)
		}
		if f, err := readFrameWithin(t, c, 20*time.Second); err != nil || f.msg == nil || f.msg.Code != Content {
			t.Fatalf("answer %d: %+v, %v", mid, f, err)
		}
		stack = <-stacks
	}
	if !strings.Contains(stack, "handRecords") || !strings.Contains(stack, "HandleApplicationDataFunc") ||
		!strings.Contains(stack, "(*dtlsLink).demux") || strings.Contains(stack, "readAndBuffer") || strings.Contains(stack, "readSession") {
		t.Fatalf("the handler did not run on a socket reader through its handler:\n%s", stack)
	}
}

// TestReadDatagramAllocations: the demultiplexer reads a datagram from lwota's UDP socket
// without allocating (net.PacketConn's ReadFrom allocated its *net.UDPAddr), with the
// sender's address.
func TestReadDatagramAllocations(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	client, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	want := client.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 2048)
	read := func() {
		if _, err := client.Write([]byte("a record")); err != nil {
			t.Fatal(err)
		}
		n, from, err := readDatagram(pc, buf)
		if err != nil || string(buf[:n]) != "a record" || from != want {
			t.Fatalf("readDatagram = %q from %v, %v; want %q from %v", buf[:n], from, err, "a record", want)
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
