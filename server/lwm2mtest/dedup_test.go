package lwm2mtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// rawServer is an LwM2M server made of one UDP socket and hand-built datagrams, so that the
// test chooses every message id and token.
type rawServer struct {
	t    *testing.T
	conn *net.UDPConn
	dev  *net.UDPAddr
}

func (s *rawServer) send(m message.Message) {
	s.t.Helper()
	size, err := coder.DefaultCoder.Size(m)
	if err != nil {
		s.t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.conn.WriteToUDP(b, s.dev); err != nil {
		s.t.Fatal(err)
	}
}

// recv returns the next message from the device.
func (s *rawServer) recv() message.Message {
	s.t.Helper()
	m, err := s.recvWithin(30 * time.Second) // generous: a loaded CI machine stalled 5 s
	if err != nil {
		s.t.Fatalf("recv: %v", err)
	}
	return m
}

// exchange sends the CON m and returns the device's answer, sending m again at CoAP's
// ACK_TIMEOUT as a real server does: go-coap drops, as a retransmission of a request still in
// flight, a CON whose id arrives after the answer to that id was written but before the request
// was marked done, and answers it from its cache only when it comes again.
func (s *rawServer) exchange(m message.Message) message.Message {
	s.t.Helper()
	var err error
	for range 8 {
		s.send(m)
		var a message.Message
		if a, err = s.recvWithin(2 * time.Second); err == nil {
			return a
		}
	}
	s.t.Fatalf("no answer to %v after 8 transmissions: %v", m.Code, err)
	return message.Message{}
}

func (s *rawServer) recvWithin(d time.Duration) (message.Message, error) {
	s.t.Helper()
	buf := make([]byte, 2048)
	_ = s.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := s.conn.ReadFromUDP(buf)
	if err != nil {
		return message.Message{}, err
	}
	s.dev = from
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
		s.t.Fatalf("decode % x: %v", buf[:n], err)
	}
	return m, nil
}

// The simulator's devices keep a duplicate cache as real clients do (Wakaama, Zephyr, Anjay;
// RFC 7252 §4.5): go-coap's UDP client remembers, for EXCHANGE_LIFETIME, the answer to every
// message id the server sent, and answers a request that reuses one with that answer, token
// included, without running it. This is what a cluster node meets when its message ids to a
// device run into another node's (all reach the device from the balancer's address): here an
// Execute under the id of an earlier Read gets the Read's ACK and is not executed.
func TestDeviceAnswersRepeatedMessageIDFromItsCache(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := &rawServer{t: t, conn: pc}
	d := NewDevice(DeviceConfig{Endpoint: "urn:dev:dedup"}, nil)
	defer d.Close()
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background(), pc.LocalAddr().String()) }()

	reg := s.recv()
	if reg.Code != codes.POST {
		t.Fatalf("first message %v, want a Register", reg.Code)
	}
	s.send(message.Message{Type: message.Acknowledgement, Code: codes.Created, MessageID: reg.MessageID, Token: reg.Token,
		Options: message.Options{{ID: message.LocationPath, Value: []byte("rd")}, {ID: message.LocationPath, Value: []byte("1")}}})
	if err := <-started; err != nil {
		t.Fatal(err)
	}

	path := func(segs ...string) message.Options {
		var o message.Options
		for _, p := range segs {
			o = append(o, message.Option{ID: message.URIPath, Value: []byte(p)})
		}
		return o
	}
	const mid = 4711
	s.send(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: mid, Token: []byte("read"), Options: path("3", "0", "0")})
	read := s.recv()
	if read.Type != message.Acknowledgement || read.MessageID != mid || string(read.Token) != "read" || read.Code != codes.Content {
		t.Fatalf("read answered %+v", read)
	}
	// Another server (node) behind the same address: an Execute under the same message id.
	exec := s.exchange(message.Message{Type: message.Confirmable, Code: codes.POST, MessageID: mid, Token: []byte("exec"), Options: path("1", "0", "8")})
	if exec.Type != message.Acknowledgement || exec.MessageID != mid || string(exec.Token) != "read" || exec.Code != codes.Content {
		t.Fatalf("execute under the read's id answered %v %v token %q, want the read's cached 2.05 with its token", exec.Type, exec.Code, exec.Token)
	}
	if st := d.Stats(); st.Requests[OpExecute] != 0 || st.Requests[OpRead] != 1 {
		t.Fatalf("the device ran %d executes and %d reads, want 0 and 1", st.Requests[OpExecute], st.Requests[OpRead])
	}
}
