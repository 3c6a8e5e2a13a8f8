package tcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/lwota/lwota/server/transport"
)

// startEndpoint serves h on 127.0.0.1:0 until the test ends.
func startEndpoint(t *testing.T, cfg Config, h transport.Handler) *Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := New(ln, nil, h, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return ep
}

// rawPeer is a device speaking RFC 8323 frames by hand.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, ep *Endpoint) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", ep.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawPeer{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (p *rawPeer) send(f frame) {
	p.t.Helper()
	b, err := encodeFrame(f)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads one frame; io.EOF when the server closed the connection.
func (p *rawPeer) recv() (frame, error) {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	return readFrame(p.r, 1<<20)
}

func (p *rawPeer) mustRecv() frame {
	p.t.Helper()
	f, err := p.recv()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return f
}

// closed waits for the server to close the connection.
func (p *rawPeer) closed() {
	p.t.Helper()
	for {
		_, err := p.recv()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && !ne.Timeout() {
			return
		}
		p.t.Fatalf("connection not closed: %v", err)
	}
}

var echo = transport.HandlerFunc(func(_ context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	resp := transport.NewMessage(transport.Content)
	resp.ContentFormat = 0
	resp.Payload = []byte(req.Path + " " + string(from.Addr.Network))
	return resp
})

// TestRFC8323_5_3_CSMFirst: lwota's first frame is its CSM with Max-Message-Size and
// Block-Wise-Transfer, byte for byte; the peer's CSM opens the way for requests.
func TestRFC8323_5_3_CSMFirst(t *testing.T) {
	ep := startEndpoint(t, Config{MaxMessageSize: 4096}, echo)
	p := dialRaw(t, ep)
	b := make([]byte, 6)
	_ = p.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(p.r, b); err != nil {
		t.Fatal(err)
	}
	// Len 4, TKL 0; code 7.01; option 2 (delta 2, length 2) = 0x1000; option 4 (delta 2, length 0).
	if got := hex.EncodeToString(b); got != "40e1221000"+"20" {
		t.Fatalf("CSM %s, want 40e122100020", got)
	}
	p.send(csmFrame(1152))
	p.send(frame{code: transport.GET, token: []byte{7}, opts: message.Options{{ID: message.URIPath, Value: []byte("a")}}})
	f := p.mustRecv()
	if f.code != transport.Content || !bytes.Equal(f.token, []byte{7}) || string(f.payload) != "/a tcp" {
		t.Fatalf("answer %v %x %q", f.code, f.token, f.payload)
	}
}

// TestRFC8323_5_3_MissingCSM: a connection whose first frame is not a CSM is aborted (7.05).
func TestRFC8323_5_3_MissingCSM(t *testing.T) {
	ep := startEndpoint(t, Config{}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv() // lwota's CSM
	p.send(frame{code: transport.GET, token: []byte{1}})
	if f := p.mustRecv(); f.code != codeAbort {
		t.Fatalf("got %v, want Abort", f.code)
	}
	p.closed()
	// The server forgets the connection just after closing its socket: wait for it, as a
	// connection that is never forgotten still fails here.
	waitFor(t, func() bool { return ep.connCount() == 0 })
}

// TestRFC8323_5_3_BadCSM: a CSM with an unknown critical option aborts the connection; an
// elective option with a bad length is ignored as unrecognised (RFC 7252 §5.4.3), and the
// connection serves.
func TestRFC8323_5_3_BadCSM(t *testing.T) {
	tests := []struct {
		name  string
		opts  message.Options
		abort bool
	}{
		{"unknown critical option", message.Options{{ID: 9, Value: []byte{1}}}, true},
		{"Max-Message-Size of 5 bytes", message.Options{{ID: 2, Value: []byte{1, 2, 3, 4, 5}}}, false},
		{"Block-Wise-Transfer with a value", message.Options{{ID: 4, Value: []byte{1}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := startEndpoint(t, Config{}, echo)
			p := dialRaw(t, ep)
			_ = p.mustRecv()
			p.send(frame{code: codeCSM, opts: tc.opts})
			if !tc.abort {
				p.send(frame{code: transport.GET, token: []byte{5}})
			}
			f := p.mustRecv()
			if tc.abort {
				if f.code != codeAbort {
					t.Fatalf("got %v, want Abort", f.code)
				}
				p.closed()
				return
			}
			if f.code != transport.Content {
				t.Fatalf("got %v, want the answer 2.05", f.code)
			}
		})
	}
}

func TestParseCSM(t *testing.T) {
	c, err := parseCSM(message.Options{{ID: 2, Value: []byte{0x04, 0x00}}, {ID: 4}, {ID: 6, Value: []byte{1}}})
	if err != nil || c.maxMessageSize != 1024 || !c.blockWise {
		t.Fatalf("parseCSM = %+v, %v", c, err)
	}
	if c, err := parseCSM(nil); err != nil || c.maxMessageSize != BaseMaxMessageSize || c.blockWise {
		t.Fatalf("empty CSM = %+v, %v", c, err)
	}
	for _, opts := range []message.Options{{{ID: 9}}, {{ID: 2, Value: make([]byte, 5)}}, {{ID: 4, Value: []byte{1}}}} {
		if _, err := parseCSM(opts); !errors.Is(err, ErrBadCSM) {
			t.Errorf("parseCSM(%v) = %v, want ErrBadCSM", opts, err)
		}
	}
}

// TestRFC8323_5_4_PingPong: a Ping is answered with a Pong carrying its token; an idle
// connection is pinged, and closed when it does not answer.
func TestRFC8323_5_4_PingPong(t *testing.T) {
	ep := startEndpoint(t, Config{IdleTimeout: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv()
	p.send(csmFrame(1152))
	p.send(frame{code: codePing, token: []byte{0xab, 0xcd}})
	for {
		f := p.mustRecv()
		if f.code == codePong {
			if !bytes.Equal(f.token, []byte{0xab, 0xcd}) {
				t.Fatalf("Pong token %x", f.token)
			}
			break
		}
		if f.code != codePing {
			t.Fatalf("got %v, want Pong", f.code)
		}
	}
	// Now stay silent: lwota pings, and closes the connection when no Pong comes.
	var pinged bool
	for {
		f, err := p.recv()
		if err != nil {
			break
		}
		pinged = pinged || f.code == codePing
	}
	if !pinged {
		t.Fatal("an idle connection was closed without a Ping")
	}
	waitCount(t, ep, 0)
}

// A peer that answers the Ping keeps its connection.
func TestIdleConnectionAnsweringPingStays(t *testing.T) {
	ep := startEndpoint(t, Config{IdleTimeout: 50 * time.Millisecond, PongTimeout: 200 * time.Millisecond}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv()
	p.send(csmFrame(1152))
	for range 3 {
		f := p.mustRecv()
		if f.code != codePing {
			t.Fatalf("got %v, want Ping", f.code)
		}
		p.send(frame{code: codePong, token: f.token})
	}
	if n := ep.connCount(); n != 1 {
		t.Fatalf("%v connections, want 1", n)
	}
}

// A frame larger than lwota's Max-Message-Size aborts the connection before it is read.
func TestOversizeFrameAborts(t *testing.T) {
	ep := startEndpoint(t, Config{MaxMessageSize: 256}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv()
	p.send(csmFrame(1152))
	p.send(frame{code: transport.POST, token: []byte{1}, payload: make([]byte, 1000)})
	if f := p.mustRecv(); f.code != codeAbort {
		t.Fatalf("got %v, want Abort", f.code)
	}
	p.closed()
}

// A request with an unrecognised critical option is answered 4.02 (RFC 7252 §5.4.1).
func TestUnknownCriticalOptionAnswered402(t *testing.T) {
	ep := startEndpoint(t, Config{}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv()
	p.send(csmFrame(1152))
	p.send(frame{code: transport.GET, token: []byte{3}, opts: message.Options{{ID: 65001, Value: []byte{1}}}})
	if f := p.mustRecv(); f.code != transport.BadOption || !bytes.Equal(f.token, []byte{3}) {
		t.Fatalf("got %v %x, want 4.02", f.code, f.token)
	}
}

// Downlinks go down the peer's connection, matched by token; a Block2 answer is collected and
// Upload follows the peer's Max-Message-Size with Block1 blocks.
func TestDoAndUploadOverConnection(t *testing.T) {
	ep := startEndpoint(t, Config{}, echo)
	p := dialRaw(t, ep)
	_ = p.mustRecv()
	p.send(csmFrame(300)) // small frames: an upload of 2000 bytes goes in blocks of 32
	// Make the connection known: a request from the peer.
	p.send(frame{code: transport.GET, token: []byte{1}})
	_ = p.mustRecv()
	var to transport.Addr
	waitFor(t, func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		for ap := range ep.conns {
			to = transport.Addr{Network: transport.TCP, AddrPort: ap}
		}
		return to.AddrPort.IsValid()
	})
	done := make(chan error, 1)
	body := bytes.Repeat([]byte("0123456789"), 200)
	go func() {
		req := transport.NewMessage(transport.PUT)
		req.Path = "/5/0/0"
		req.ContentFormat = 42
		resp, err := ep.Upload(context.Background(), to, req, bytes.NewReader(body), int64(len(body)), transport.UploadOptions{})
		if err == nil && resp.Code != transport.Changed {
			err = errors.New("answer " + resp.Code.String())
		}
		done <- err
	}()
	var got []byte
	for {
		f := p.mustRecv()
		m, _ := transport.MessageFromOptions(f.code, f.token, f.opts, f.payload)
		if m.Code != transport.PUT || !m.Block1.Set || m.Block1.SZX > 3 {
			t.Fatalf("block %+v: want a PUT with Block1 of at most 128 bytes", m.Block1)
		}
		got = append(got, m.Payload...)
		resp := transport.NewMessage(transport.Continue)
		if !m.Block1.More {
			resp.Code = transport.Changed
		}
		resp.Block1 = m.Block1
		resp.Token = m.Token
		p.send(frame{code: resp.Code, token: resp.Token, opts: resp.Options()})
		if !m.Block1.More {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("uploaded %d bytes, want %d", len(got), len(body))
	}

	// A plain Do whose payload would not fit the peer's Max-Message-Size goes in blocks too.
	go func() {
		req := transport.NewMessage(transport.PUT)
		req.Path = "/3/0/14"
		req.Payload = body[:1000]
		resp, err := ep.Do(context.Background(), to, req)
		if err == nil && resp.Code != transport.Changed {
			err = errors.New("answer " + resp.Code.String())
		}
		done <- err
	}()
	blocks := 0
	for {
		f := p.mustRecv()
		m, _ := transport.MessageFromOptions(f.code, f.token, f.opts, f.payload)
		if !m.Block1.Set || len(f.payload) > 128 {
			t.Fatalf("Do sent %d bytes in one frame, Block1 %+v; the peer takes 300", len(f.payload), m.Block1)
		}
		blocks++
		resp := transport.NewMessage(transport.Continue)
		if !m.Block1.More {
			resp.Code = transport.Changed
		}
		resp.Block1 = m.Block1
		p.send(frame{code: resp.Code, token: m.Token, opts: resp.Options()})
		if !m.Block1.More {
			break
		}
	}
	if err := <-done; err != nil || blocks < 8 {
		t.Fatalf("Do in %d blocks: %v", blocks, err)
	}

	// The peer goes away: Do fails at once with ErrNotConnected.
	_ = p.nc.Close()
	waitCount(t, ep, 0)
	if _, err := ep.Do(context.Background(), to, transport.NewMessage(transport.GET)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Do after close: %v", err)
	}
	if ep.Connected(to) {
		t.Fatal("Connected after close")
	}
}

func waitCount(t *testing.T, ep *Endpoint, n float64) {
	t.Helper()
	waitFor(t, func() bool { return ep.connCount() == n })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
