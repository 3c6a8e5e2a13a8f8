package lwm2mtest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// TestRegLoadUpdateSpread checks RegLoad.Spread: the Updates of a round start spread over it
// (device i of n at i/n of it), not all at once, and the Registers are not spread.
func TestRegLoadUpdateSpread(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var (
		mu      sync.Mutex
		updates []time.Time // arrival of each Update
	)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			path, _ := m.Options.Path()
			resp := message.Message{Token: m.Token, Type: message.Acknowledgement, MessageID: m.MessageID, Code: codes.Changed}
			if path == "/rd" {
				q, _ := m.Options.Queries()
				resp.Code = codes.Created
				resp.Options = resp.Options.Add(message.Option{ID: message.LocationPath, Value: []byte("rd")})
				resp.Options = resp.Options.Add(message.Option{ID: message.LocationPath, Value: []byte(strings.TrimPrefix(q[0], "ep="))})
			} else {
				mu.Lock()
				updates = append(updates, time.Now())
				mu.Unlock()
			}
			out := make([]byte, 256)
			k, err := coder.DefaultCoder.Encode(resp, out)
			if err != nil {
				t.Errorf("encode: %v", err)
				return
			}
			_, _ = srv.WriteToUDPAddrPort(out[:k], from)
		}
	}()
	const n, spread = 5, 400 * time.Millisecond
	l, err := NewRegLoad(srv.LocalAddr().String(), n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Spread = spread
	ctx := context.Background()
	if got, err := l.Register(ctx, n, 300); err != nil || got != n {
		t.Fatalf("Register = %d, %v", got, err)
	}
	begin := time.Now()
	if got, err := l.Update(ctx, n, 1); err != nil || got != n {
		t.Fatalf("Update = %d, %v", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(updates) != n {
		t.Fatalf("%d Updates arrived, want %d", len(updates), n)
	}
	// Lower bounds only: a busy machine makes a start late, never early.
	for i, at := range updates {
		if due := spread * time.Duration(i) / n; at.Sub(begin) < due {
			t.Errorf("Update %d arrived %s after the round began, before its due %s", i, at.Sub(begin), due)
		}
	}
}
