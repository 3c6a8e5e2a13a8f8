package nginxtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// echo answers every datagram with its name.
func echo(t *testing.T, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
	return pc.LocalAddr().String()
}

// ask sends one datagram from a new socket through the balancer and returns who answered.
func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for range 20 { // nginx may drop the first datagram of a session while it connects upstream
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no answer through %s", addr)
	return ""
}

// Sessions spread over the backends by source port; after a reload without a backend, new
// sessions reach only the others.
func TestBalancer(t *testing.T) {
	a, b := echo(t, "a"), echo(t, "b")
	lb := Start(t, Upstream{Name: "coap", Backends: []string{a, b}})
	seen := map[string]int{}
	for range 40 {
		seen[ask(t, lb.Addr("coap"))]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("40 sessions reached %v: the hash does not spread by port", seen)
	}
	if err := lb.SetBackends("coap", []string{b}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if got := ask(t, lb.Addr("coap")); got != "b" {
			log, _ := os.ReadFile(filepath.Join(lb.Dir(), "error.log"))
			t.Fatalf("a new session after node a was removed reached %q\n%s", got, log)
		}
	}
	if err := lb.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.ListenPacket("udp", lb.Addr("coap")); err != nil {
		t.Fatalf("nginx's port still held after Stop: %v", err)
	} else {
		c.Close()
	}
}
