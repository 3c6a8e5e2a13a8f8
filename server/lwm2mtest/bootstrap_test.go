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

// TestBootstrapAnswersARetransmittedFinish: the server missed the 2.04 to its Bootstrap-Finish
// and sends the same message again; the device, done with bootstrap, still answers it (its link
// lingers), so the server does not count a finished bootstrap as failed.
func TestBootstrapAnswersARetransmittedFinish(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	recv := func() (message.Message, *net.UDPAddr) {
		t.Helper()
		buf := make([]byte, 2048)
		_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := srv.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatal(err)
		}
		return m, from
	}
	send := func(m message.Message, to *net.UDPAddr) {
		t.Helper()
		buf := make([]byte, 2048)
		n, err := coder.DefaultCoder.Encode(m, buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WriteToUDP(buf[:n], to); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := Bootstrap(context.Background(), "linger-1", BootstrapConfig{URI: "coap://" + srv.LocalAddr().String(), Timeout: 20 * time.Second}, nil, nil)
		done <- err
	}()
	req, dev := recv()
	send(message.Message{Token: req.Token, Code: codes.Changed, MessageID: req.MessageID, Type: message.Acknowledgement}, dev)
	// A write of the DM account, so that the bootstrap succeeds, then Finish.
	opts := make(message.Options, 0, 4)
	buf := make([]byte, 32)
	opts, _, _ = opts.SetPath(buf, "/0/1")
	opts, _, _ = opts.SetContentFormat(buf[16:], message.AppLwm2mTLV)
	// TLV: resource 0 (URI) "coap://dm:5683", resource 1 false, resource 2 = 3.
	tlv := append([]byte{0xc8, 0x00, 14}, []byte("coap://dm:5683")...)
	tlv = append(tlv, 0xc1, 0x01, 0x00, 0xc1, 0x02, 0x03)
	send(message.Message{Token: []byte{7}, Code: codes.PUT, MessageID: 0x2000, Type: message.Confirmable, Options: opts, Payload: tlv}, dev)
	if ack, _ := recv(); ack.Code != codes.Changed {
		t.Fatalf("write answered %v", ack.Code)
	}
	fopts := make(message.Options, 0, 2)
	fopts, _, _ = fopts.SetPath(make([]byte, 8), "/bs")
	finish := message.Message{Token: []byte{8}, Code: codes.POST, MessageID: 0x2001, Type: message.Confirmable, Options: fopts}
	send(finish, dev)
	if ack, _ := recv(); ack.Code != codes.Changed || ack.MessageID != 0x2001 {
		t.Fatalf("finish answered %v", ack)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The 2.04 "was lost": the same Finish again, after Bootstrap returned. go-coap marks an
	// exchange done only after its answer is written and drops a copy arriving in between as a
	// request still in flight, so the test retransmits as a server does (every second here,
	// within FinishLinger) until the cached answer comes.
	for attempt := 1; ; attempt++ {
		send(finish, dev)
		buf := make([]byte, 2048)
		_ = srv.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := srv.ReadFromUDP(buf)
		if err != nil {
			if attempt < 4 {
				continue
			}
			t.Fatalf("retransmitted finish not answered after %d sends: %v", attempt, err)
		}
		ack := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &ack); err != nil {
			t.Fatal(err)
		}
		if ack.Code != codes.Changed || ack.MessageID != 0x2001 {
			t.Fatalf("retransmitted finish answered %v", ack)
		}
		return
	}
}
