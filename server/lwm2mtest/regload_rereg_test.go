package lwm2mtest

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestRegLoadReregistersAfterNotFound: a server that forgot the registrations (restarted
// without them) answers their Updates 4.04, and a real client then registers again (LwM2M 1.1
// core §6.2.2). RegLoad does so, counts it, and sends its next Updates to the new location.
func TestRegLoadReregistersAfterNotFound(t *testing.T) {
	var (
		mu      sync.Mutex
		gen     = 1
		known   = map[string]bool{} // locations of this generation's registrations
		updates = map[string]int{}  // Updates answered 2.04, by location
	)
	srv := fakeRD(t, func(m *message.Message, _ netip.AddrPort) []message.Message {
		mu.Lock()
		defer mu.Unlock()
		path, _ := m.Options.Path()
		if path == "/rd" {
			loc := endpointOf(m) + "-" + strconv.Itoa(gen)
			known["/rd/"+loc] = true
			return []message.Message{rdAck(m, loc)}
		}
		if !known[path] {
			return []message.Message{{Token: m.Token, Type: message.Acknowledgement, MessageID: m.MessageID, Code: codes.NotFound}}
		}
		updates[path]++
		return []message.Message{rdAck(m, "")}
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
	mu.Lock()
	gen++
	clear(known) // the server restarts without its registrations
	mu.Unlock()
	if n, err := l.Update(ctx, 2, 1); err != nil || n != 3 {
		t.Fatalf("Update after the server forgot: %d, %v; want 3 devices registered again", n, err)
	}
	if got := l.Reregistered(); got != 3 {
		t.Errorf("Reregistered = %d, want 3", got)
	}
	if n, err := l.Update(ctx, 2, 1); err != nil || n != 3 {
		t.Fatalf("the next Update = %d, %v", n, err)
	}
	if got := l.Reregistered(); got != 3 {
		t.Errorf("Reregistered after a round the server knew = %d, want still 3", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 3 {
		if loc := "/rd/" + DefaultNaming(i) + "-2"; updates[loc] != 1 {
			t.Errorf("Updates to the new registration %s: %d, want 1 (all %v)", loc, updates[loc], updates)
		}
	}
}
