package lwm2mtest

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// fakeRD is a bare UDP resource directory for RegLoad's tests, on loopback until the test ends:
// it decodes every datagram and sends, in order, the messages answer returns for it (none: the
// request goes unanswered). It checks nothing itself: the tests' answer functions do.
func fakeRD(t *testing.T, answer func(m *message.Message, from netip.AddrPort) []message.Message) *net.UDPConn {
	t.Helper()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf, out := make([]byte, 2048), make([]byte, 256)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
				t.Errorf("request does not decode: %v", err)
				return
			}
			for _, resp := range answer(&m, from) {
				k, err := coder.DefaultCoder.Encode(resp, out)
				if err != nil {
					t.Errorf("encode: %v", err)
					return
				}
				_, _ = srv.WriteToUDPAddrPort(out[:k], from)
			}
		}
	}()
	return srv
}

// rdAck is the piggybacked answer to m: 2.01 with Location-Path rd/<location> for a Register
// (POST /rd), 2.04 for anything else.
func rdAck(m *message.Message, location string) message.Message {
	resp := message.Message{Token: m.Token, Type: message.Acknowledgement, MessageID: m.MessageID, Code: codes.Changed}
	if path, _ := m.Options.Path(); path == "/rd" {
		resp.Code = codes.Created
		resp.Options = resp.Options.Add(message.Option{ID: message.LocationPath, Value: []byte("rd")})
		resp.Options = resp.Options.Add(message.Option{ID: message.LocationPath, Value: []byte(location)})
	}
	return resp
}

// endpointOf is the ep= query of a Register.
func endpointOf(m *message.Message) string {
	q, _ := m.Options.Queries()
	for _, s := range q {
		if ep, ok := strings.CutPrefix(s, "ep="); ok {
			return ep
		}
	}
	return ""
}
