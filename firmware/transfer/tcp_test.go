package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
	"github.com/lwota/lwota/server/lwm2mtest"
	"github.com/lwota/lwota/server/transport/tcp"
)

// serveTCP mounts the fixture's transfer server on a CoAP-over-TCP listener (TLS with tc).
func serveTCP(t *testing.T, f *fixture, tc *tcp.TLSConfig) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := tcp.New(ln, tc, f.srv, tcp.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ep.LocalAddr()
}

// libcoap fetches /fw/{token} over coap+tcp (RFC 8323) at every block size from 16 to 1024
// bytes; the file it writes has the image's exact SHA-256.
func TestLibcoapPullOverTCP(t *testing.T) {
	bin := sysdeps.Require(t, "coap-client-notls")
	f := startServer(t, Config{}, 64<<10)
	addr := serveTCP(t, f, nil)
	for _, size := range []int{16, 32, 64, 128, 256, 512, 1024} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			libcoapFetch(t, bin, fmt.Sprintf("coap+tcp://%s%s%s", addr, PathPrefix, f.token(t, "job1")), size, f.sum)
		})
	}
}

// The same over coaps+tcp, with lwota's certificate from a CA made for the test.
func TestLibcoapPullOverTLS(t *testing.T) {
	bin := sysdeps.Require(t, "coap-client-openssl")
	pki, err := lwm2mtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := pki.Server()
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pki.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	f := startServer(t, Config{}, 64<<10)
	addr := serveTCP(t, f, &tcp.TLSConfig{Certificate: srvCert.TLS})
	for _, size := range []int{16, 256, 1024} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			libcoapFetch(t, bin, fmt.Sprintf("coaps+tcp://%s%s%s", addr, PathPrefix, f.token(t, "job1")), size, f.sum, "-R", ca)
		})
	}
}

func libcoapFetch(t *testing.T, bin, uri string, block int, sum string, extra ...string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(append([]string{}, extra...), "-b", fmt.Sprint(block), "-o", out, uri)
	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(got)
	if hex.EncodeToString(h[:]) != sum {
		t.Fatalf("got %d bytes with another SHA-256", len(got))
	}
}
