package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// Client tests: Do, Notify and Listen between two Endpoints, or against a raw test peer.

func TestDo_Piggybacked(t *testing.T) {
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		resp := NewMessage(Content)
		resp.Payload = append([]byte("echo:"), r.Path...)
		return resp
	}}
	srv := startEndpoint(t, h, testConfig())
	cli := startEndpoint(t, nil, testConfig())
	resp, err := cli.Do(context.Background(), srv.addr, req(GET, "/3/0/0"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != Content || string(resp.Payload) != "echo:/3/0/0" || len(resp.Token) != 8 {
		t.Fatalf("got %+v", resp)
	}
}

func TestDo_RFC7252_5_2_2_SeparateResponse(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	type result struct {
		m   *Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := cli.Do(context.Background(), dev.addr(), req(GET, "/5/0/3"))
		done <- result{m, err}
	}()
	f := dev.recvFrame()
	if f.typ != typeCON || f.msg.Code != GET {
		t.Fatalf("got %+v", f)
	}
	dev.send(cli.addr, emptyMessage(typeACK, f.mid))
	resp := NewMessage(Content)
	resp.Token = f.msg.Token
	resp.Payload = []byte("later")
	sep := datagram(t, typeCON, 0x5555, resp)
	dev.send(cli.addr, sep)
	ack, _ := dev.recv()
	if !bytes.Equal(ack, emptyMessage(typeACK, 0x5555)) {
		t.Fatalf("separate response not ACKed: % x", ack)
	}
	r := <-done
	if r.err != nil || string(r.m.Payload) != "later" {
		t.Fatalf("Do: %v %+v", r.err, r.m)
	}
	// The device's retransmission of its response is ACKed again, not reset.
	dev.send(cli.addr, sep)
	if ack, _ = dev.recv(); !bytes.Equal(ack, emptyMessage(typeACK, 0x5555)) {
		t.Fatalf("duplicate separate response: % x", ack)
	}
}

func TestDo_RFC7252_4_2_RetransmitsUnderLoss(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(POST, "/1/0/8"))
		done <- err
	}()
	var first frame
	for i := range 3 { // drop the first two copies
		f := dev.recvFrame()
		if i == 0 {
			first = f
		} else if f.mid != first.mid || !bytes.Equal(f.msg.Token, first.msg.Token) {
			t.Fatalf("retransmission %d differs", i)
		}
	}
	resp := NewMessage(Changed)
	resp.Token = first.msg.Token
	dev.send(cli.addr, datagram(t, typeACK, first.mid, resp))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := cli.counter(t, "lwota_transport_retransmissions_total"); got != 2 {
		t.Fatalf("retransmissions = %v", got)
	}
}

func TestDo_ErrTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.ACKTimeout = 10 * time.Millisecond
	cfg.MaxRetransmit = 2
	cli := startEndpoint(t, nil, cfg)
	dev := newRawPeer(t)
	start := time.Now()
	_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 70*time.Millisecond { // 10+20+40 ms
		t.Fatalf("gave up after %v", d)
	}
	for i := range 3 {
		if _, _, err := dev.tryRecv(time.Second); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
	}
}

func TestDo_SeparateResponseNeverComes(t *testing.T) {
	cfg := testConfig()
	cfg.ACKTimeout = 10 * time.Millisecond
	cfg.MaxRetransmit = 1
	cli := startEndpoint(t, nil, cfg)
	dev := newRawPeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x"))
		done <- err
	}()
	f := dev.recvFrame()
	dev.send(cli.addr, emptyMessage(typeACK, f.mid))
	if err := <-done; !errors.Is(err, ErrTimeout) { // within MAX_TRANSMIT_WAIT = 30 ms
		t.Fatalf("err = %v", err)
	}
}

func TestDo_ErrReset(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x"))
		done <- err
	}()
	f := dev.recvFrame()
	dev.send(cli.addr, emptyMessage(typeRST, f.mid))
	if err := <-done; !errors.Is(err, ErrReset) {
		t.Fatalf("err = %v", err)
	}
}

func TestDo_ContextCancel(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(ctx, dev.addr(), req(GET, "/x"))
		done <- err
	}()
	dev.recvFrame()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestDo_ClosedEndpoint(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x"))
		done <- err
	}()
	dev.recvFrame()
	cli.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestDo_RFC7959_Block2Reassembly(t *testing.T) {
	body := payloadOf(5000)
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message {
		r := NewMessage(Content)
		r.ETag = []byte{1, 2, 3}
		r.Payload = body
		return r
	}}
	srv := startEndpoint(t, h, testConfig())
	cli := startEndpoint(t, nil, testConfig())
	resp, err := cli.Do(context.Background(), srv.addr, req(GET, "/fw/image"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.Payload, body) || resp.Block2.Set {
		t.Fatalf("got %d bytes, block2 %+v", len(resp.Payload), resp.Block2)
	}
	if want := 5 + int64(cli.counter(t, "lwota_transport_retransmissions_total")); h.calls.Load() != want {
		t.Fatalf("handler ran %d times, want %d (one per block request)", h.calls.Load(), want)
	}
	// A body beyond MaxBodySize is refused.
	cfg := testConfig()
	cfg.MaxBodySize = 3000
	small := startEndpoint(t, nil, cfg)
	if _, err := small.Do(context.Background(), srv.addr, req(GET, "/fw/image")); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestDo_RFC7959_Block1Upload(t *testing.T) {
	body := payloadOf(5000)
	var got atomic.Pointer[Message]
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		got.Store(r)
		return NewMessage(Changed)
	}}
	for _, serverBlock := range []int{1024, 64} { // 64: the server asks for smaller blocks
		t.Run("", func(t *testing.T) {
			h.calls.Store(0)
			cfg := testConfig()
			cfg.BlockSize = serverBlock
			srv := startEndpoint(t, h, cfg)
			cli := startEndpoint(t, nil, testConfig())
			r := req(PUT, "/5/0/0")
			r.ContentFormat = 42
			r.Payload = body
			resp, err := cli.Do(context.Background(), srv.addr, r)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != Changed || h.calls.Load() != 1 || !bytes.Equal(got.Load().Payload, body) || got.Load().ContentFormat != 42 {
				t.Fatalf("resp %v, calls %d", resp.Code, h.calls.Load())
			}
		})
	}
}

// Upload streams a body from an io.ReaderAt in blocks of the asked size and reports progress
// per accepted block; a body shorter than declared fails before anything more is sent.
func TestUpload_StreamsBlocksWithProgress(t *testing.T) {
	body := payloadOf(5000)
	var got atomic.Pointer[Message]
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		got.Store(r)
		return NewMessage(Changed)
	}}
	srv := startEndpoint(t, h, testConfig())
	cli := startEndpoint(t, nil, testConfig())
	for _, c := range []struct {
		blockSize, wantBlocks int
	}{{256, 20}, {0, 5}, {100, 79}} { // 0: the endpoint's 1024; 100 rounds down to 64
		t.Run(fmt.Sprint(c.blockSize), func(t *testing.T) {
			h.calls.Store(0)
			var sent []int64
			r := req(PUT, "/5/0/0")
			r.ContentFormat = 42
			resp, err := cli.Upload(context.Background(), srv.addr, r, bytes.NewReader(body), int64(len(body)),
				UploadOptions{BlockSize: c.blockSize, Progress: func(n int64) { sent = append(sent, n) }})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != Changed || h.calls.Load() != 1 || !bytes.Equal(got.Load().Payload, body) {
				t.Fatalf("resp %v, handler calls %d, body %d bytes", resp.Code, h.calls.Load(), len(got.Load().Payload))
			}
			if len(sent) != c.wantBlocks || sent[len(sent)-1] != int64(len(body)) {
				t.Fatalf("progress reported %d times ending at %v, want %d ending at %d", len(sent), sent[len(sent)-1:], c.wantBlocks, len(body))
			}
		})
	}
	short := bytes.NewReader(body[:3000])
	if _, err := cli.Upload(context.Background(), srv.addr, req(PUT, "/5/0/0"), short, int64(len(body)), UploadOptions{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestDo_Block1RestartsOn413WithSmallerSize(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	body := payloadOf(3000)
	done := make(chan error, 1)
	go func() {
		r := req(POST, "/fw")
		r.Payload = body
		_, err := cli.Do(context.Background(), dev.addr(), r)
		done <- err
	}()
	f := dev.recvFrame()
	if f.msg.Block1 != (Block{Set: true, Num: 0, More: true, SZX: 6}) || f.msg.Size1 != 3000 {
		t.Fatalf("first block %+v size1 %d", f.msg.Block1, f.msg.Size1)
	}
	tooLarge := NewMessage(RequestEntityTooLarge)
	tooLarge.Token = f.msg.Token
	tooLarge.Block1 = Block{Set: true, SZX: 5}
	dev.send(cli.addr, datagram(t, typeACK, f.mid, tooLarge))
	var got []byte
	lastMID := int(f.mid) // a late copy of the refused first block is skipped too
	for {
		f = dev.recvFrame()
		if int(f.mid) == lastMID {
			// A retransmission of the block just acknowledged (our ACK was late on a busy machine):
			// the client's copy of that ACK settles it.
			continue
		}
		lastMID = int(f.mid)
		if int(f.msg.Block1.Num)*512 != len(got) || f.msg.Block1.SZX != 5 {
			t.Fatalf("block %+v at %d", f.msg.Block1, len(got))
		}
		got = append(got, f.msg.Payload...)
		resp := NewMessage(Continue)
		if !f.msg.Block1.More {
			resp.Code = Changed
		}
		resp.Token = f.msg.Token
		resp.Block1 = f.msg.Block1
		dev.send(cli.addr, datagram(t, typeACK, f.mid, resp))
		if !f.msg.Block1.More {
			break
		}
	}
	if err := <-done; err != nil || !bytes.Equal(got, body) {
		t.Fatalf("err %v, %d bytes", err, len(got))
	}
}

func TestListen_ObserveNotifications(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	token := cli.NewToken()
	got := make(chan *Message, 4)
	stop := cli.Listen(token, func(from Peer, m *Message) {
		if from.Addr != dev.addr() {
			t.Errorf("from %v", from.Addr)
		}
		got <- m
	})
	n := NewMessage(Content)
	n.Token = token
	n.Observe = 12
	n.Payload = []byte("21.5")
	dev.send(cli.addr, datagram(t, typeCON, 1, n))
	if ack, _ := dev.recv(); !bytes.Equal(ack, emptyMessage(typeACK, 1)) {
		t.Fatalf("CON notification: % x", ack)
	}
	if m := <-got; m.Observe != 12 || string(m.Payload) != "21.5" {
		t.Fatalf("got %+v", m)
	}
	n.Observe = 13
	dev.send(cli.addr, datagram(t, typeNON, 2, n))
	if m := <-got; m.Observe != 13 {
		t.Fatalf("got %+v", m)
	}
	stop()
	dev.send(cli.addr, datagram(t, typeCON, 3, n))
	if rst, _ := dev.recv(); !bytes.Equal(rst, emptyMessage(typeRST, 3)) {
		t.Fatalf("after stop: % x", rst)
	}
}

func TestNotify(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	n := NewMessage(Content)
	n.Token = []byte{0xab}
	n.Observe = 3
	if err := cli.Notify(context.Background(), dev.addr(), n, false); err != nil {
		t.Fatal(err)
	}
	if f := dev.recvFrame(); f.typ != typeNON || f.msg.Observe != 3 || !bytes.Equal(f.msg.Token, []byte{0xab}) {
		t.Fatalf("NON: %+v", f)
	}
	for _, tc := range []struct {
		reply uint8
		want  error
	}{{typeACK, nil}, {typeRST, ErrReset}} {
		done := make(chan error, 1)
		go func() { done <- cli.Notify(context.Background(), dev.addr(), n, true) }()
		f := dev.recvFrame()
		if f.typ != typeCON || f.msg.Code != Content {
			t.Fatalf("CON: %+v", f)
		}
		dev.send(cli.addr, emptyMessage(tc.reply, f.mid))
		if err := <-done; !errors.Is(err, tc.want) {
			t.Fatalf("reply %d: err %v", tc.reply, err)
		}
	}
}

func TestNotifyBetweenEndpoints(t *testing.T) {
	// The simulator's view: a device Endpoint notifies the server Endpoint, which listens.
	srv := startEndpoint(t, nil, testConfig())
	dev := startEndpoint(t, nil, testConfig())
	token := srv.NewToken()
	got := make(chan *Message, 1)
	defer srv.Listen(token, func(_ Peer, m *Message) { got <- m })()
	n := NewMessage(Content)
	n.Token = token
	n.Observe = 1
	if err := dev.Notify(context.Background(), srv.addr, n, true); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Observe != 1 {
		t.Fatalf("got %+v", m)
	}
	n.Token = []byte{1, 2}
	if err := dev.Notify(context.Background(), srv.addr, n, true); !errors.Is(err, ErrReset) {
		t.Fatalf("unknown token: %v", err)
	}
}

// A peer answering from its duplicate cache (a message id it still remembers from before
// lwota restarted, or from another cluster node behind the same balancer address: the answer
// carries another exchange's token) did not run the request. lwota sends it again at once
// under a message id out of the remembered window, instead of retransmitting into the same
// cached answer until MAX_TRANSMIT_WAIT; the peer runs it and its answer completes the Do.
func TestDo_StaleDuplicateCacheReseedsMessageIDs(t *testing.T) {
	cfg := testConfig()
	cfg.ACKTimeout = time.Hour // a retransmission would hang the test: only the re-issue may come
	cli := startEndpoint(t, nil, cfg)
	dev := newRawPeer(t)
	stale := NewMessage(Content)
	stale.Token = []byte("old-run!")
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(GET, "/x"))
		done <- err
	}()
	first := dev.recvFrame()
	dev.send(cli.addr, datagram(t, typeACK, first.mid, stale))
	again := dev.recvFrame()
	if back := first.mid - again.mid; back < 16384 || again.mid-first.mid < 256 {
		t.Fatalf("sent again as message id %d, inside the window around %d the peer remembers", again.mid, first.mid)
	}
	if !bytes.Equal(again.msg.Token, first.msg.Token) || again.msg.Path != "/x" {
		t.Fatalf("sent again as %+v, want the same request (%+v)", again.msg, first.msg)
	}
	dev.send(cli.addr, datagram(t, typeACK, first.mid, stale)) // the first copy's answer, late: ignored
	ok := NewMessage(Content)
	ok.Token = again.msg.Token
	dev.send(cli.addr, datagram(t, typeACK, again.mid, ok))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := cli.counter(t, "lwota_transport_stale_answers_total"); n != 1 {
		t.Fatalf("stale_answers_total = %v, want 1", n)
	}
}

// After an empty ACK the peer has taken the request (its answer comes separately): a
// piggybacked answer with another token under the same id is ignored, and the request is not
// sent again, which could run it twice.
func TestDo_NoReissueAfterEmptyACK(t *testing.T) {
	cfg := testConfig()
	cfg.ACKTimeout = time.Hour
	cfg.Workers = 1 // the empty ACK is handled before the answer after it
	cli := startEndpoint(t, nil, cfg)
	dev := newRawPeer(t)
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(context.Background(), dev.addr(), req(POST, "/5/0/2"))
		done <- err
	}()
	f := dev.recvFrame()
	dev.send(cli.addr, emptyMessage(typeACK, f.mid))
	stale := NewMessage(Changed)
	stale.Token = []byte("other!!!")
	dev.send(cli.addr, datagram(t, typeACK, f.mid, stale))
	if b, _, err := dev.tryRecv(200 * time.Millisecond); err == nil {
		t.Fatalf("sent % x after the empty ACK", b)
	}
	sep := NewMessage(Changed)
	sep.Token = f.msg.Token
	dev.send(cli.addr, datagram(t, typeNON, 0x1234, sep))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A peer whose every answer carries another token (a broken token echo, or a cache that holds
// every id) gets the request again under a fresh id maxStaleAnswers times, and then no more:
// lwota does not send forever, and never takes such an answer for its own.
func TestDo_StaleAnswersAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.ACKTimeout = time.Hour // no retransmission: every datagram below is a re-issue
	cli := startEndpoint(t, nil, cfg)
	dev := newRawPeer(t)
	stale := NewMessage(Content)
	stale.Token = []byte("other!!!")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cli.Do(ctx, dev.addr(), req(POST, "/5/0/2"))
		done <- err
	}()
	mids := map[uint16]bool{}
	for range 1 + maxStaleAnswers {
		f := dev.recvFrame()
		mids[f.mid] = true
		dev.send(cli.addr, datagram(t, typeACK, f.mid, stale))
	}
	if b, _, err := dev.tryRecv(200 * time.Millisecond); err == nil {
		t.Fatalf("sent % x after %d stale answers", b, 1+maxStaleAnswers)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if len(mids) != 1+maxStaleAnswers {
		t.Fatalf("message ids used %v: want the first and %d fresh ones", mids, maxStaleAnswers)
	}
	if n := cli.counter(t, "lwota_transport_stale_answers_total"); n != maxStaleAnswers {
		t.Fatalf("stale_answers_total = %v, want %d", n, maxStaleAnswers)
	}
}
