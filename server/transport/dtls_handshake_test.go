package transport

import (
	"context"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkDTLSHandshakeModes: full PSK handshakes (TLS_PSK_WITH_AES_128_CCM_8, cookie exchange
// included) from pion clients on new sockets, client and server in this process. With
// -memprofile, the transport's own allocations per handshake show beside pion's.
func BenchmarkDTLSHandshakeModes(b *testing.B) {
	for _, mode := range []struct {
		name string
		hv   HelloVerify
	}{{"auto", HelloVerifyAuto}, {"pion-cookie", HelloVerifyPion}} {
		b.Run(mode.name, func(b *testing.B) {
			te, link := startDTLS(b, nil, DTLSConfig{HelloVerify: mode.hv, HandshakeTimeout: 5 * time.Second})
			link.start()
			<-link.probed
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c, err := dialDTLS(b, te.addr, "dev1", "secretkey123", nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
		})
	}
}

// stackMoved reports whether calling f copied the calling goroutine's stack elsewhere (it grew):
// a local's address, kept as a number the runtime does not adjust, changes.
//
//go:noinline
func stackMoved(f func()) bool {
	var local byte
	before := uintptr(unsafe.Pointer(&local))
	f()
	return uintptr(unsafe.Pointer(&local)) != before
}

// useStack3K needs 3 KiB of stack.
//
//go:noinline
func useStack3K() {
	var frame [3 << 10]byte
	keepFrame(frame[:])
}

// stackProbe answers every request inline, on the session's own goroutine (dtlsLink.run), and
// reports whether a call needing 3 KiB moved that goroutine's stack.
type stackProbe struct{ moved chan bool }

func (stackProbe) Inline(*Message) bool { return true }

func (p stackProbe) ServeCoAP(context.Context, Peer, *Message) *Message {
	select {
	case p.moved <- stackMoved(useStack3K):
	default:
	}
	return NewMessage(Content)
}

// TestDTLSSessionStackGrownAtStart: a session's goroutine grows its stack once when it starts,
// while it is shallow, rather than in pion's server setup and again under the session's
// handlers (each copy adjusting every frame of a deep call chain): under an inline handler a
// call needing 3 KiB still finds the room. (Under -race the frames are larger and the stack has
// grown before the probe either way; without it, the test fails when run does not grow it.)
func TestDTLSSessionStackGrownAtStart(t *testing.T) {
	p := stackProbe{moved: make(chan bool, 1)}
	te, _ := startDTLSWith(t, p, testConfig(), DTLSConfig{})
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 1, req(GET, "/3/0"))); err != nil {
		t.Fatal(err)
	}
	select {
	case moved := <-p.moved:
		if moved {
			t.Error("the session goroutine's stack grew under its handler; want it grown when the session started")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request never reached the handler")
	}
}
