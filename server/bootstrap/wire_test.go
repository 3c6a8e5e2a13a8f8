package bootstrap_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/codec/tlv"
	"github.com/lwota/lwota/server/lwm2m"
)

// rawClient is a device made of a UDP socket and go-coap's message coder: the test sees every
// datagram the Bootstrap Server sends, in order.
type rawClient struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
	mid  int32
}

func newRawClient(t *testing.T, server string) *rawClient {
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, to: to, mid: 0x100}
}

func (c *rawClient) send(m message.Message) {
	c.t.Helper()
	buf := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteToUDP(buf[:n], c.to); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) recv() message.Message {
	c.t.Helper()
	buf := make([]byte, 2048)
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, _, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		c.t.Fatalf("no datagram from the bootstrap server: %v", err)
	}
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
		c.t.Fatalf("undecodable datagram % x: %v", buf[:n], err)
	}
	return m
}

// answer piggybacks a response to the confirmable request m.
func (c *rawClient) answer(m message.Message, code codes.Code, cf message.MediaType, payload []byte) {
	r := message.Message{Token: m.Token, Code: code, MessageID: m.MessageID, Type: message.Acknowledgement, Payload: payload}
	if payload != nil {
		buf := make([]byte, 8)
		r.Options, _, _ = r.Options.SetContentFormat(buf, cf)
	}
	c.send(r)
}

func path(m message.Message) string {
	p, err := m.Options.Path()
	if err != nil {
		return "/"
	}
	return "/" + strings.TrimPrefix(p, "/")
}

// TestWire_LwM2M11_BootstrapSequence: on the wire, a Bootstrap-Request is answered 2.04 first;
// then come Bootstrap-Discover (GET / with Accept link-format), Bootstrap-Delete of /0 and /1
// (never naming the bootstrap account /0/0), Bootstrap-Write of /0/1 and /1/0 in TLV, and
// Bootstrap-Finish (POST /bs), in that order, each a confirmable request.
func TestWire_LwM2M11_BootstrapSequence(t *testing.T) {
	h := newHarness(t, nil)
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "raw-1", ServerURI: "coap://127.0.0.1:5683", Lifetime: 90})
	dev := newRawClient(t, h.udp)
	req := message.Message{Token: []byte{1, 2}, Code: codes.POST, MessageID: 0x0a0b, Type: message.Confirmable}
	buf := make([]byte, 64)
	req.Options, _, _ = req.Options.SetPath(buf, "/bs")
	req.Options, _, _ = req.Options.AddString(buf[8:], message.URIQuery, "ep=raw-1")
	dev.send(req)

	ack := dev.recv()
	if ack.Type != message.Acknowledgement || ack.Code != codes.Changed || ack.MessageID != 0x0a0b || string(ack.Token) != "\x01\x02" {
		t.Fatalf("first datagram %v, want the ACK 2.04 of Bootstrap-Request", ack)
	}
	var seq []string
	for {
		m := dev.recv()
		if m.Type != message.Confirmable {
			t.Fatalf("request %v is not confirmable", m)
		}
		p := path(m)
		seq = append(seq, m.Code.String()+" "+p)
		switch {
		case m.Code == codes.GET:
			if a, err := m.Options.Accept(); err != nil || a != message.AppLinkFormat {
				t.Fatalf("Bootstrap-Discover without Accept link-format: %v", m)
			}
			dev.answer(m, codes.Content, message.AppLinkFormat,
				[]byte(`</>;lwm2m=1.1,</0/0>;uri="coap://127.0.0.1:5783",</0/1>;ssid=7;uri="coap://old:5683",</1/0>;ssid=7,</3/0>`))
		case m.Code == codes.DELETE:
			if p == "/0/0" || p == "/" {
				t.Fatalf("Bootstrap-Delete of %s would touch the bootstrap account", p)
			}
			dev.answer(m, codes.Deleted, 0, nil)
		case m.Code == codes.PUT:
			cf, err := m.Options.ContentFormat()
			if err != nil || cf != message.AppLwm2mTLV {
				t.Fatalf("Bootstrap-Write %s in content format %v (%v), want TLV", p, cf, err)
			}
			base := lwm2m.MustParsePath(p)
			recs, err := tlv.Decode(base, m.Payload, nil)
			if err != nil {
				t.Fatalf("Bootstrap-Write %s: %v", p, err)
			}
			got := map[uint16][]byte{}
			for _, r := range recs {
				got[r.Path.ResourceID()] = r.Value.Bytes
			}
			if p == "/0/1" && (string(got[0]) != "coap://127.0.0.1:5683" || got[1][0] != 0 || got[2][0] != 3 || got[10][0] != 1) {
				t.Fatalf("Security instance %v", got)
			}
			if p == "/1/0" && (got[0][0] != 1 || got[1][0] != 90 || string(got[7]) != "U") {
				t.Fatalf("Server instance %v", got)
			}
			dev.answer(m, codes.Changed, 0, nil)
		case m.Code == codes.POST && p == "/bs":
			dev.answer(m, codes.Changed, 0, nil)
		default:
			t.Fatalf("unexpected request %v", m)
		}
		if m.Code == codes.POST {
			break
		}
	}
	want := "GET / | DELETE /0 | DELETE /1 | PUT /0/1 | PUT /1/0 | POST /bs"
	if got := strings.Join(seq, " | "); got != want {
		t.Fatalf("sequence %s\nwant     %s", got, want)
	}
	if s := h.lastSession(t, "raw-1"); s.Outcome != bootstrap.OutcomeSuccess {
		t.Fatalf("session %+v", s)
	}
}

// TestBootstrapSilentClientTimesOut: a client that asks and then answers nothing ends its
// session at the request timeout, or at the session timeout when that comes first, with the
// reason stored.
func TestBootstrapSilentClientTimesOut(t *testing.T) {
	for _, tt := range []struct {
		name             string
		request, session time.Duration
		reason           string
	}{
		{"request timeout", time.Second, 20 * time.Second, "Bootstrap-Discover /: no answer within 1s"},
		{"session timeout", 10 * time.Second, time.Second, "Bootstrap-Discover /: the session took longer than 1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			silentClient(t, tt.request, tt.session, tt.reason)
		})
	}
}

func silentClient(t *testing.T, request, session time.Duration, reason string) {
	h := newHarness(t, func(c *bootstrap.ServerConfig) { c.RequestTimeout, c.SessionTimeout = request, session })
	h.config(t, bootstrap.Config{Scope: bootstrap.ScopeEndpoint, Name: "silent-1", ServerURI: "coap://127.0.0.1:5683"})
	dev := newRawClient(t, h.udp)
	req := message.Message{Token: []byte{9}, Code: codes.POST, MessageID: 0x0101, Type: message.Confirmable}
	buf := make([]byte, 64)
	req.Options, _, _ = req.Options.SetPath(buf, "/bs")
	req.Options, _, _ = req.Options.AddString(buf[8:], message.URIQuery, "ep=silent-1")
	dev.send(req)
	if ack := dev.recv(); ack.Code != codes.Changed {
		t.Fatalf("answer %v", ack)
	}
	s := h.lastSession(t, "silent-1")
	if s.Outcome != bootstrap.OutcomeFailure || !strings.Contains(s.Reason, reason) {
		t.Fatalf("session %s: %q", s.Outcome, s.Reason)
	}
}
