package transport

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// inlineTestHandler answers /fw inline-safe and at once, holds a worker on /block until release
// is closed, and answers /ask with what the asking device answers to a Do of its own.
type inlineTestHandler struct {
	e       atomic.Pointer[Endpoint] // set once the endpoint runs; read by a worker
	blocked chan struct{}            // closed when /block runs
	release chan struct{}
}

func (h *inlineTestHandler) Inline(r *Message) bool { return r.Path == "/fw" }

func (h *inlineTestHandler) ServeCoAP(ctx context.Context, from Peer, r *Message) *Message {
	switch r.Path {
	case "/block":
		close(h.blocked)
		<-h.release
		return NewMessage(Content)
	case "/ask":
		m, err := h.e.Load().Do(ctx, from.Addr, req(GET, "/3/0/0"))
		resp := NewMessage(Content)
		if err != nil {
			resp.Payload = []byte("Do: " + err.Error())
		} else {
			resp.Payload = m.Payload
		}
		return resp
	}
	resp := NewMessage(Content)
	resp.Payload = []byte("block")
	return resp
}

// readFrameWithin is readFrame with a deadline of d.
func readFrameWithin(t *testing.T, c *dtls.Conn, d time.Duration) (frame, error) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		return frame{}, err
	}
	return decode(buf[:n])
}

// TestDTLSInlineHandlerSkipsWorkers: a request whose handler vouches that it is inline-safe is
// answered on the session's goroutine: with the only worker held by another device's request,
// the block is still answered (queued for a worker, it waited for the held one).
func TestDTLSInlineHandlerSkipsWorkers(t *testing.T) {
	h := &inlineTestHandler{blocked: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers = 1
	te, _ := startDTLSWith(t, h, cfg, DTLSConfig{})
	defer close(h.release) // before the Endpoint stops (cleanups run after deferred calls)

	holder, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer holder.Close()
	if _, err := holder.Write(datagram(t, typeCON, 1, req(GET, "/block"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("/block never reached the handler")
	}

	puller, err := dialDTLS(t, te.addr, "dev2", "otherkey456", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer puller.Close()
	if _, err := puller.Write(datagram(t, typeCON, 2, req(GET, "/fw"))); err != nil {
		t.Fatal(err)
	}
	f, err := readFrameWithin(t, puller, 10*time.Second)
	if err != nil {
		t.Fatalf("no answer to the inline-safe request while the only worker is held: %v", err)
	}
	if f.typ != typeACK || f.mid != 2 || f.msg == nil || string(f.msg.Payload) != "block" {
		t.Fatalf("answer %+v", f)
	}
}

// TestDTLSHandlerDoToSameDevice: a handler that makes no inline promise may call Do to the device
// whose request it answers: it runs on a worker, so the session's goroutine is free to read the
// device's answer to the Do (run on that goroutine it would wait for itself until Do timed out).
func TestDTLSHandlerDoToSameDevice(t *testing.T) {
	h := &inlineTestHandler{}
	te, _ := startDTLS(t, h, DTLSConfig{})
	h.e.Store(te.Endpoint)
	c, err := dialDTLS(t, te.addr, "dev1", "secretkey123", nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(datagram(t, typeCON, 7, req(GET, "/ask"))); err != nil {
		t.Fatal(err)
	}
	// The handler's Do arrives first; the device answers it piggybacked (an ACK, which the
	// engine takes on the session's goroutine).
	f, err := readFrameWithin(t, c, 10*time.Second)
	if err != nil {
		t.Fatalf("the handler's Do never reached the device: %v", err)
	}
	if f.typ != typeCON || f.msg == nil || f.msg.Path != "/3/0/0" {
		t.Fatalf("request %+v", f)
	}
	ans := NewMessage(Content)
	ans.Token = f.msg.Token
	ans.Payload = []byte("lwota-device")
	if _, err := c.Write(datagram(t, typeACK, f.mid, ans)); err != nil {
		t.Fatal(err)
	}
	f, err = readFrameWithin(t, c, 20*time.Second)
	if err != nil {
		t.Fatalf("no answer to /ask: %v", err)
	}
	if f.typ != typeACK || f.mid != 7 || f.msg == nil || string(f.msg.Payload) != "lwota-device" {
		t.Fatalf("answer to /ask %+v (payload %q), want the device's answer to the Do", f, framePayload(f))
	}
}

func framePayload(f frame) string {
	if f.msg == nil {
		return ""
	}
	return string(f.msg.Payload)
}
