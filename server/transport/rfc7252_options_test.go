package transport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// rawResponse builds a response datagram of type typ with code 2.05, the token, one extra
// option (encoded as the first option: delta = id, for ids 13..268) and a payload.
func rawResponse(typ uint8, mid uint16, token []byte, optID int, payload string) []byte {
	b := []byte{0x40 | typ<<4 | byte(len(token)), byte(Content), byte(mid >> 8), byte(mid)}
	b = append(b, token...)
	b = append(b, 0xd1, byte(optID-13), 0x78)
	return append(append(b, 0xff), payload...)
}

// TestWire_RFC7252_5_4_1_NonRequestUnknownCritical: a NON request with an unrecognised critical
// option is rejected (§4.3: a Reset or nothing), never answered 4.02; the handler does not run.
func TestWire_RFC7252_5_4_1_NonRequestUnknownCritical(t *testing.T) {
	h := &countingHandler{fn: func(context.Context, Peer, *Message) *Message { return NewMessage(Content) }}
	ep := startEndpoint(t, h, wireConfig())
	dev := newRawPeer(t)
	for _, tc := range []struct {
		name string
		in   string
		want string // the answer's bytes; a NON answer's message id is lwota's own, so compared apart
		non  bool
	}{
		// GET NON, Uri-Path "a", option 13 (critical, unknown): RST with the request's id.
		{"unknown critical", "51 01 0020 05 b1 61 21 78", "70 00 0020", false},
		// Bad length of a critical option (Block2 with 4 bytes): unrecognised too (§5.4.3).
		{"bad length critical", "51 01 0021 05 b1 61 c4 00000000", "70 00 0021", false},
		// Unknown elective option 16: ignored, the handler answers with a NON 2.05.
		{"unknown elective", "51 01 0022 05 b1 61 51 78", "51 45 05", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev.send(ep.addr, unhex(t, tc.in))
			got, _ := dev.recv()
			want := unhex(t, tc.want)
			if tc.non {
				if len(got) < 5 || got[0] != want[0] || got[1] != want[1] || got[4] != want[2] {
					t.Fatalf("got % x, want a NON 2.05 with token 05", got)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got % x want % x", got, want)
			}
		})
	}
	if h.calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1 (the elective case)", h.calls.Load())
	}
}

// TestDo_RFC7252_5_4_1_ResponseUnknownCritical: a response with an unrecognised critical option
// is rejected: Do fails with ErrBadOption whether it came piggybacked, as a CON (answered RST) or
// as a NON (ignored). An unknown elective option is ignored and the answer taken.
func TestDo_RFC7252_5_4_1_ResponseUnknownCritical(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	// lwota retransmits its request every 50 ms until the ACK is in; on a loaded machine such a
	// retransmission can reach the device after the answer, or in the next case. requests
	// remembers every request's message id so that a retransmission is never taken for
	// something new.
	requests := map[uint16]bool{}
	retransmission := func(b []byte) bool {
		return len(b) >= 4 && b[0]>>4&3 == typeCON && b[1] != 0 && requests[uint16(b[2])<<8|uint16(b[3])]
	}
	recvNew := func() []byte {
		for {
			if b, _ := dev.recv(); !retransmission(b) {
				return b
			}
		}
	}
	for _, tc := range []struct {
		name    string
		typ     uint8 // typeACK: piggybacked; typeCON/typeNON: separate, after an empty ACK
		optID   int
		wantErr error
		reply   func(mid uint16) []byte // what lwota sends back to a separate response; nil: nothing
	}{
		{"piggybacked critical", typeACK, 13, ErrBadOption, nil},
		{"separate CON critical", typeCON, 13, ErrBadOption, func(mid uint16) []byte { return emptyMessage(typeRST, mid) }},
		{"separate NON critical", typeNON, 13, ErrBadOption, nil},
		{"piggybacked elective", typeACK, 16, nil, nil},
		{"separate CON elective", typeCON, 16, nil, func(mid uint16) []byte { return emptyMessage(typeACK, mid) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				m   *Message
				err error
			}
			done := make(chan result, 1)
			go func() {
				m, err := cli.Do(context.Background(), dev.addr(), req(GET, "/5/0/3"))
				done <- result{m, err}
			}()
			f, err := decode(recvNew())
			if err != nil {
				t.Fatal(err)
			}
			requests[f.mid] = true
			mid := f.mid
			if tc.typ != typeACK {
				dev.send(cli.addr, emptyMessage(typeACK, f.mid))
				mid = 0x7000 + f.mid%0x100
			}
			dev.send(cli.addr, rawResponse(tc.typ, mid, f.msg.Token, tc.optID, "v1"))
			if tc.reply != nil {
				if got := recvNew(); !bytes.Equal(got, tc.reply(mid)) {
					t.Fatalf("lwota answered the response with % x, want % x", got, tc.reply(mid))
				}
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Do did not return")
			}
			if !errors.Is(r.err, tc.wantErr) {
				t.Fatalf("Do: %v, want %v", r.err, tc.wantErr)
			}
			if tc.wantErr == nil && (r.m.Code != Content || string(r.m.Payload) != "v1") {
				t.Fatalf("Do: %+v", r.m)
			}
			if tc.reply == nil && tc.typ != typeACK {
				if b, _, err := dev.tryRecv(100 * time.Millisecond); err == nil && !retransmission(b) {
					t.Fatalf("a rejected NON response was answered: % x", b)
				}
			}
		})
	}
}

// A notification with an unrecognised critical option is rejected (RST for a CON) and never
// reaches the listener.
func TestListen_RFC7252_5_4_1_NotificationUnknownCritical(t *testing.T) {
	cli := startEndpoint(t, nil, testConfig())
	dev := newRawPeer(t)
	token := cli.NewToken()
	got := make(chan *Message, 2)
	stop := cli.Listen(token, func(_ Peer, m *Message) { got <- m })
	defer stop()
	dev.send(cli.addr, rawResponse(typeCON, 0x0101, token, 13, "bad"))
	if rst, _ := dev.recv(); !bytes.Equal(rst, emptyMessage(typeRST, 0x0101)) {
		t.Fatalf("CON notification with an unknown critical option answered % x, want RST", rst)
	}
	dev.send(cli.addr, rawResponse(typeCON, 0x0102, token, 16, "good"))
	if ack, _ := dev.recv(); !bytes.Equal(ack, emptyMessage(typeACK, 0x0102)) {
		t.Fatalf("CON notification answered % x, want ACK", ack)
	}
	if m := <-got; string(m.Payload) != "good" {
		t.Fatalf("listener got %q first, want the good notification", m.Payload)
	}
}
