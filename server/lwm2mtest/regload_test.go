package lwm2mtest

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestRegLoadWire checks RegLoad's hand-made datagrams against go-coap's codec: a Register is a
// CON POST /rd with the query and a link-format payload, its Location-Path is what the Update
// posts to, each device uses new message ids, and a duplicate or foreign datagram is not taken
// for the answer.
func TestRegLoadWire(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
		mids = map[string]bool{}
	)
	srv := fakeRD(t, func(m *message.Message, from netip.AddrPort) []message.Message {
		path, _ := m.Options.Path()
		q, _ := m.Options.Queries()
		mu.Lock()
		seen = append(seen, m.Code.String()+" "+path+" "+strings.Join(q, "&")+" "+strings.Fields(string(m.Payload) + " -")[0])
		key := from.String() + "/" + strconv.Itoa(int(m.MessageID))
		if mids[key] {
			t.Errorf("message id %d repeated from %s", m.MessageID, from)
		}
		mids[key] = true
		mu.Unlock()
		if cf, _ := m.Options.ContentFormat(); path == "/rd" && cf != message.AppLinkFormat {
			t.Errorf("register content format %v", cf)
		}
		// First a stray datagram (another token and id), which must be ignored.
		stray := message.Message{Token: []byte{9, 9, 9, 9}, Type: message.Acknowledgement, MessageID: m.MessageID + 1, Code: codes.NotFound}
		return []message.Message{stray, rdAck(m, "id-"+endpointOf(m))}
	})
	l, err := NewRegLoad(srv.LocalAddr().String(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if n, err := l.Register(ctx, 2, 300); err != nil || n != 3 {
		t.Fatalf("Register = %d, %v", n, err)
	}
	if n, err := l.Update(ctx, 2, 2); err != nil || n != 6 {
		t.Fatalf("Update = %d, %v", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{
		"POST /rd ep=sim-000000&lt=300&lwm2m=1.1&b=U </>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</4/0>,</5>;ver=1.1,</5/0>": 1,
		"POST /rd/id-sim-000001  -": 2,
	}
	got := map[string]int{}
	for _, s := range seen {
		got[s]++
	}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("server saw %q %d times, want %d; all: %q", s, got[s], n, seen)
		}
	}
	if len(seen) != 9 {
		t.Errorf("server saw %d requests, want 9", len(seen))
	}
}
