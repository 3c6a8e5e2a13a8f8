package lwm2mtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwota/lwota/server/lwm2m"
)

// testServer is a minimal LwM2M server peer on 127.0.0.1:0, built on go-coap's UDP server
// and mux: it answers the registration interface and records what it received. Tests drive
// the device's DM surface through the per-device connection it keeps, which is what a real
// server does: the device's socket only talks to the server address it dialed.
type testServer struct {
	addr string

	mu       sync.Mutex
	nextID   int
	byLoc    map[string]string   // location -> endpoint
	conns    map[string]mux.Conn // endpoint -> connection of its latest uplink
	forget   bool                // answer the next Update 4.04
	events   chan event
	register int
}

// event is one registration-interface request the server answered.
type event struct {
	op      string // "register", "update", "deregister"
	ep      string
	loc     string
	queries []string
	links   string
	from    net.Addr
	code    codes.Code
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerOn(t, serveRouter)
}

// newTestServerOn is newTestServer served by serve (serveRouter, or serveRouterDTLS's).
func newTestServerOn(t *testing.T, serve func(*testing.T, *mux.Router) string) *testServer {
	t.Helper()
	s := &testServer{byLoc: map[string]string{}, conns: map[string]mux.Conn{}, events: make(chan event, 1024)}
	r := mux.NewRouter()
	r.SetErrorHandler(func(err error) { t.Logf("test server router: %v", err) })
	if err := r.Handle("/rd", mux.HandlerFunc(s.serveRegister)); err != nil {
		t.Fatalf("route: %v", err)
	}
	r.DefaultHandle(mux.HandlerFunc(s.serveRegistration))
	s.addr = serve(t, r)
	return s
}

func (s *testServer) emit(e event) {
	select {
	case s.events <- e:
	default: // nobody reads events in load tests
	}
}

func (s *testServer) serveRegister(w mux.ResponseWriter, r *mux.Message) {
	if r.Code() != codes.POST {
		_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
		return
	}
	q, _ := r.Options().Queries()
	var ep string
	for _, kv := range q {
		if v, ok := strings.CutPrefix(kv, "ep="); ok {
			ep = v
		}
	}
	var links []byte
	if r.Body() != nil {
		links, _ = r.ReadBody()
	}
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("x%d", s.nextID)
	s.byLoc["/rd/"+id] = ep
	s.conns[ep] = w.Conn()
	s.register++
	s.mu.Unlock()
	_ = w.SetResponse(codes.Created, message.TextPlain, nil,
		message.Option{ID: message.LocationPath, Value: []byte("rd")},
		message.Option{ID: message.LocationPath, Value: []byte(id)})
	s.emit(event{op: "register", ep: ep, loc: "/rd/" + id, queries: q, links: string(links), from: w.Conn().RemoteAddr(), code: codes.Created})
}

func (s *testServer) serveRegistration(w mux.ResponseWriter, r *mux.Message) {
	if c := r.Code(); c < codes.GET || c >= 32 {
		return
	}
	p, _ := r.Options().Path()
	q, _ := r.Options().Queries()
	s.mu.Lock()
	ep, ok := s.byLoc[p]
	forget := s.forget && r.Code() == codes.POST
	if forget {
		s.forget = false
		delete(s.byLoc, p)
		ok = false
	}
	if ok {
		s.conns[ep] = w.Conn()
	}
	s.mu.Unlock()
	e := event{ep: ep, loc: p, queries: q, from: w.Conn().RemoteAddr(), code: codes.NotFound}
	switch r.Code() {
	case codes.POST:
		e.op = "update"
		if r.Body() != nil {
			b, _ := r.ReadBody()
			e.links = string(b)
		}
		if ok {
			e.code = codes.Changed
		}
	case codes.DELETE:
		e.op = "deregister"
		if ok {
			e.code = codes.Deleted
			s.mu.Lock()
			delete(s.byLoc, p)
			s.mu.Unlock()
		}
	default:
		e.op, e.code = "other", codes.MethodNotAllowed
	}
	_ = w.SetResponse(e.code, message.TextPlain, nil)
	s.emit(e)
}

// conn is the connection the server reaches endpoint ep on.
func (s *testServer) conn(t *testing.T, ep string) mux.Conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[ep]
	if !ok {
		t.Fatalf("no connection for %s", ep)
	}
	return c
}

// next waits for the next registration-interface event of kind op, skipping others.
func (s *testServer) next(t *testing.T, op string, within time.Duration) event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e := <-s.events:
			if e.op == op {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s within %v", op, within)
			return event{}
		}
	}
}

// startDevice starts a device against s and closes it at the end of the test.
func startDevice(t *testing.T, s *testServer, cfg DeviceConfig) *Device {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = "urn:dev:" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	d := NewDevice(cfg, nil)
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Start(ctxT(t), s.addr); err != nil {
		t.Fatalf("start: %v", err)
	}
	s.next(t, "register", 5*time.Second)
	return d
}

// dm is the server's device-management client for one device.
type dm struct {
	t    *testing.T
	conn mux.Conn
}

func (s *testServer) dm(t *testing.T, d *Device) dm {
	return dm{t: t, conn: s.conn(t, d.Endpoint())}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type answer struct {
	code codes.Code
	cf   int
	body []byte
	loc  string
}

func toAnswer(t *testing.T, m *pool.Message, err error) answer {
	t.Helper()
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	a := answer{code: m.Code(), cf: -1}
	if cf, err := m.ContentFormat(); err == nil {
		a.cf = int(cf)
	}
	if m.Body() != nil {
		a.body, _ = m.ReadBody()
	}
	a.loc, _ = m.Options().LocationPath()
	return a
}

func accept(f lwm2m.ContentFormat) message.Option {
	return message.Option{ID: message.Accept, Value: encodeUint(uint32(f))}
}

func encodeUint(v uint32) []byte {
	switch {
	case v == 0:
		return nil
	case v <= 0xff:
		return []byte{byte(v)}
	case v <= 0xffff:
		return []byte{byte(v >> 8), byte(v)}
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func (c dm) get(path string, opts ...message.Option) answer {
	c.t.Helper()
	m, err := c.conn.Get(ctxT(c.t), path, opts...)
	return toAnswer(c.t, m, err)
}

func (c dm) put(path string, f lwm2m.ContentFormat, body []byte, opts ...message.Option) answer {
	c.t.Helper()
	m, err := c.conn.Put(ctxT(c.t), path, message.MediaType(f), bytes.NewReader(body), opts...)
	return toAnswer(c.t, m, err)
}

func (c dm) post(path string, f lwm2m.ContentFormat, body []byte) answer {
	c.t.Helper()
	var r *bytes.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	var m *pool.Message
	var err error
	if r == nil {
		m, err = c.conn.Post(ctxT(c.t), path, message.MediaType(f), nil)
	} else {
		m, err = c.conn.Post(ctxT(c.t), path, message.MediaType(f), r)
	}
	return toAnswer(c.t, m, err)
}

func (c dm) writeAttributes(path string, queries ...string) answer {
	c.t.Helper()
	opts := make([]message.Option, 0, len(queries))
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	m, err := c.conn.Put(ctxT(c.t), path, message.TextPlain, nil, opts...)
	return toAnswer(c.t, m, err)
}

func (c dm) delete(path string) answer {
	c.t.Helper()
	m, err := c.conn.Delete(ctxT(c.t), path)
	return toAnswer(c.t, m, err)
}

// eventually polls cond until it holds, for state that has no event to wait on.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveRouter serves r on a loopback UDP port with go-coap until the test ends and returns the
// address.
func serveRouter(t *testing.T, r *mux.Router) string {
	t.Helper()
	l, err := coapnet.NewListenUDP("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	serveCoAP(t, r, l)
	return l.LocalAddr().String()
}

// serveCoAP serves r with go-coap on l, a *coapnet.UDPConn or a *coapnet.DTLSListener, until the
// test ends. Block-wise stays off: the tests do blocks by hand, as real servers' firmware paths do.
func serveCoAP(t *testing.T, r *mux.Router, l io.Closer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Each option is one value that both servers take.
	withMux, withCtx := options.WithMux(r), options.WithContext(ctx)
	noBlockwise := options.WithBlockwise(false, blockwise.SZX1024, 3*time.Second)
	runner := options.WithPeriodicRunner(periodic.New(ctx.Done(), 100*time.Millisecond))
	noIdle := options.WithInactivityMonitor(time.Hour, func(*client.Conn) {})
	var serve func() error
	var stop func()
	switch l := l.(type) {
	case *coapnet.UDPConn:
		srv := udp.NewServer(withMux, withCtx, noBlockwise, runner, noIdle)
		serve, stop = func() error { return srv.Serve(l) }, srv.Stop
	case *coapnet.DTLSListener:
		srv := coapdtls.NewServer(withMux, withCtx, noBlockwise, runner, noIdle)
		serve, stop = func() error { return srv.Serve(l) }, srv.Stop
	default:
		cancel()
		t.Fatalf("serveCoAP: no server for a %T", l)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve()
	}()
	t.Cleanup(func() {
		stop()
		cancel()
		_ = l.Close()
		<-done
	})
}
