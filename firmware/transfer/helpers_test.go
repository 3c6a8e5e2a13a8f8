package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/blobstore"
)

// fakeGrants is pure logic: jobs map to grants; "foreign" is another device's job. It is a
// Tracker too, and records the block ends served per job.
type fakeGrants struct {
	mu     sync.Mutex
	jobs   map[string]Grant
	calls  int
	fail   error
	served map[string][]int64
	// gate, when set, holds every Grant call (after counting it, before answering) until it
	// is closed; entered hears of each call held.
	gate    chan struct{}
	entered chan struct{}
}

func (f *fakeGrants) Served(job string, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.served == nil {
		f.served = map[string][]int64{}
	}
	f.served[job] = append(f.served[job], end)
}

func (f *fakeGrants) servedTo(job string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.served[job]...)
}

func (f *fakeGrants) Grant(_ context.Context, job string, _ transport.Peer) (Grant, error) {
	f.mu.Lock()
	f.calls++
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return Grant{}, f.fail
	}
	if job == "foreign" {
		return Grant{}, ErrForbidden
	}
	g, ok := f.jobs[job]
	if !ok {
		return Grant{}, ErrForbidden
	}
	return g, nil
}

// update changes f under its lock (a test between requests).
func (f *fakeGrants) update(change func(*fakeGrants)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeGrants) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// countingBlobs wraps the real directory store and counts opens per (key, offset).
type countingBlobs struct {
	Blobs
	mu    sync.Mutex
	opens map[string]int
}

func (c *countingBlobs) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opens[fmt.Sprintf("%s@%d", key, offset)]++
	c.mu.Unlock()
	return c.Blobs.Open(ctx, key, offset, length)
}

func (c *countingBlobs) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.opens))
	for k, v := range c.opens {
		out[k] = v
	}
	return out
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	srv    *Server
	addr   netip.AddrPort
	image  []byte
	sum    string
	blobs  *countingBlobs
	grants *fakeGrants
	tokens *Tokens
	clock  *clock
	reg    *prometheus.Registry
}

// token mints a token for job valid for an hour.
func (f *fixture) token(t testing.TB, job string) string {
	t.Helper()
	tok, err := f.tokens.Mint(job, time.Hour)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

// startServer runs a transport.Endpoint on 127.0.0.1:0 with a transfer Server over a real
// directory blob store holding a random image of size bytes, granted to job "job1".
func startServer(t testing.TB, cfg Config, size int) *fixture {
	t.Helper()
	dir, err := blobstore.OpenDir(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	img := make([]byte, size)
	_, _ = rand.Read(img)
	h := sha256.Sum256(img)
	sum := hex.EncodeToString(h[:])
	key := "images/sha256/" + sum
	ctx := context.Background()
	if _, err := dir.Put(ctx, key, bytes.NewReader(img)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	clk := &clock{t: time.Now()}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	f := &fixture{
		image:  img,
		sum:    sum,
		blobs:  &countingBlobs{Blobs: dir, opens: map[string]int{}},
		grants: &fakeGrants{jobs: map[string]Grant{"job1": {BlobKey: key, Size: int64(size), SHA256: sum}}},
		tokens: NewTokens(secret, clk.now),
		clock:  clk,
		reg:    prometheus.NewRegistry(),
	}
	f.srv = New(cfg, f.tokens, f.grants, f.blobs, nil, f.reg)

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ep, err := transport.New(pc, transport.UDP, f.srv, transport.DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ep.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	f.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	return f
}

// rawClient speaks CoAP by hand from its own socket, one CON request at a time.
type rawClient struct {
	t    testing.TB
	conn *net.UDPConn
	mid  uint16
	tok  uint64
}

func newRawClient(t testing.TB, addr netip.AddrPort) *rawClient {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, mid: 100}
}

type rawResp struct {
	code    codes.Code
	block2  *transport.Block
	size2   int64
	etag    []byte
	maxAge  int64 // -1 when absent
	payload []byte
}

// get sends GET path with Block2 (num, szx) when block is non-nil, a fresh token each time,
// retransmitting on loss, and returns the response.
func (c *rawClient) get(path string, block *transport.Block) (rawResp, error) {
	c.mid++
	c.tok++
	var tok [8]byte
	for i := range tok {
		tok[i] = byte(c.tok >> (8 * i))
	}
	m := message.Message{Token: tok[:], Code: codes.GET, MessageID: int32(c.mid), Type: message.Confirmable}
	buf := make([]byte, 256)
	opts, _, err := m.Options.SetPath(buf, path)
	if err != nil {
		return rawResp{}, err
	}
	if block != nil {
		v := block.Num<<4 | uint32(block.SZX)
		opts, _, err = opts.SetUint32(make([]byte, 4), message.Block2, v)
		if err != nil {
			return rawResp{}, err
		}
	}
	m.Options = opts
	out := make([]byte, 512)
	n, err := coder.DefaultCoder.Encode(m, out)
	if err != nil {
		return rawResp{}, err
	}
	in := make([]byte, 2048)
	for attempt := 0; attempt < 8; attempt++ {
		if _, err := c.conn.Write(out[:n]); err != nil {
			return rawResp{}, err
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			_ = c.conn.SetReadDeadline(deadline)
			k, err := c.conn.Read(in)
			if err != nil {
				break // retransmit
			}
			var r message.Message
			r.Options = make(message.Options, 0, 8)
			if _, err := coder.DefaultCoder.Decode(in[:k], &r); err != nil {
				return rawResp{}, fmt.Errorf("decode: %w", err)
			}
			if r.MessageID != int32(c.mid) {
				continue // late answer to an earlier request
			}
			if r.Type != message.Acknowledgement || !bytes.Equal(r.Token, tok[:]) {
				return rawResp{}, fmt.Errorf("bad answer: type %v token %x", r.Type, r.Token)
			}
			res := rawResp{code: r.Code, size2: -1, maxAge: -1, payload: append([]byte(nil), r.Payload...)}
			if v, err := r.Options.GetUint32(message.MaxAge); err == nil {
				res.maxAge = int64(v)
			}
			if v, err := r.Options.GetUint32(message.Block2); err == nil {
				res.block2 = &transport.Block{Set: true, Num: v >> 4, More: v&8 != 0, SZX: uint8(v & 7)}
			}
			if v, err := r.Options.GetUint32(message.Size2); err == nil {
				res.size2 = int64(v)
			}
			if v, err := r.Options.GetBytes(message.ETag); err == nil {
				res.etag = append([]byte(nil), v...)
			}
			return res, nil
		}
	}
	return rawResp{}, errors.New("no answer")
}

// fetch pulls a whole image block by block at size 16<<szx and returns it.
func (c *rawClient) fetch(path string, szx uint8) ([]byte, error) {
	var img []byte
	for num := uint32(0); ; num++ {
		r, err := c.get(path, &transport.Block{Num: num, SZX: szx})
		if err != nil {
			return nil, err
		}
		if r.code != codes.Content || r.block2 == nil || r.block2.Num != num {
			return nil, fmt.Errorf("block %d: code %v block2 %+v", num, r.code, r.block2)
		}
		img = append(img, r.payload...)
		if !r.block2.More {
			return img, nil
		}
	}
}
