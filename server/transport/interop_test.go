package transport

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// Interop with libcoap's command-line client (apt-get install libcoap3-bin). The test fails
// when the binary is missing: CI installs it.

func coapClient(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := sysdeps.Require(t, "coap-client-notls")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client-notls %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestInterop_LibcoapRegister(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []*Message
	)
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		resp := NewMessage(Created)
		resp.LocationPath = []string{"rd", "a1b2"}
		return resp
	}}
	ep := startEndpoint(t, h, DefaultConfig())
	uri := fmt.Sprintf("coap://%s/rd?ep=x", ep.addr.AddrPort)
	coapClient(t, "-m", "post", "-t", "40", uri, "-e", "</3/0>")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("handler ran %d times", len(seen))
	}
	r := seen[0]
	if r.Code != POST || r.Path != "/rd" || len(r.Query) != 1 || r.Query[0] != "ep=x" ||
		string(r.Payload) != "</3/0>" || r.ContentFormat != 40 {
		t.Fatalf("handler saw %+v", r)
	}
}

func TestInterop_LibcoapBlock2GET(t *testing.T) {
	body := make([]byte, 5*1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		resp := NewMessage(Content)
		resp.ContentFormat = 42
		resp.Payload = body
		return resp
	}}
	ep := startEndpoint(t, h, DefaultConfig())
	out := filepath.Join(t.TempDir(), "fw.bin")
	coapClient(t, "-m", "get", "-b", "64", "-o", out, fmt.Sprintf("coap://%s/fw/image", ep.addr.AddrPort))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("received %d bytes, want %d identical bytes", len(got), len(body))
	}
	if n := h.calls.Load(); n < 80 {
		t.Fatalf("handler ran %d times, want one per 64-byte block (80)", n)
	}
}

func TestInterop_LibcoapBlock1PUT(t *testing.T) {
	body := strings.Repeat("0123456789", 300)
	var got []byte
	var mu sync.Mutex
	h := &countingHandler{fn: func(_ context.Context, _ Peer, r *Message) *Message {
		mu.Lock()
		got = r.Payload
		mu.Unlock()
		return NewMessage(Changed)
	}}
	ep := startEndpoint(t, h, DefaultConfig())
	coapClient(t, "-m", "put", "-b", "128", "-e", body, fmt.Sprintf("coap://%s/5/0/0", ep.addr.AddrPort))
	mu.Lock()
	defer mu.Unlock()
	if h.calls.Load() != 1 || string(got) != body {
		t.Fatalf("handler ran %d times with %d bytes", h.calls.Load(), len(got))
	}
}
