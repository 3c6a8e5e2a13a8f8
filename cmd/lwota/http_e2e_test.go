package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/cmd/testdeps/sysdeps"
)

// TestHTTPTLS: with --http-tls-cert and --http-tls-key the REST API speaks HTTPS, checked against
// the test CA; plain HTTP to that port gets no answer from the API.
func TestHTTPTLS(t *testing.T) {
	pki := newTestPKI(t, "lwota web CA")
	pki.issue(t, "lwota-web", true)
	ts := startService(t, t.TempDir(), "", "--http-tls-cert", pki.file("lwota-web.pem"), "--http-tls-key", pki.file("lwota-web.key"))
	addr := ts.svc.httpLn.Addr().String()
	if !strings.HasPrefix(ts.svc.cfg.PublicURL, "https://") {
		t.Errorf("public URL %q, want https", ts.svc.cfg.PublicURL)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("https: status %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}

	// Another CA's view: the certificate is not trusted.
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil {
		t.Fatal("https without the test CA succeeded")
	}
	// Plain HTTP: net/http's TLS server answers 400 and closes; the API never sees it.
	resp, err = http.Get("http://" + addr + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain http to the TLS port: %d %s", resp.StatusCode, body)
		}
	}
}

// preflight sends a CORS preflight from origin and returns the answer's headers and status.
func preflight(t *testing.T, url, origin string) (http.Header, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "DELETE")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header, resp.StatusCode
}

func accessControl(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return out
}

// TestCORS: by default no answer carries an Access-Control-* header, so browsers refuse
// cross-origin calls; --cors-origins allows exactly the origins listed.
func TestCORS(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		ts := startService(t, t.TempDir(), "")
		h, _ := preflight(t, ts.base+"/api/v1/devices/dev-1/credentials", "https://evil.example")
		if ac := accessControl(h); len(ac) != 0 {
			t.Fatalf("preflight answered with %v", ac)
		}
		req, _ := http.NewRequest(http.MethodGet, ts.base+"/api/v1/devices", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ac := accessControl(resp.Header); len(ac) != 0 {
			t.Fatalf("GET answered with %v", ac)
		}
	})
	t.Run("listed origins", func(t *testing.T) {
		ts := startService(t, t.TempDir(), "", "--cors-origins", "https://console.example, https://ops.example/")
		h, status := preflight(t, ts.base+"/api/v1/devices/dev-1/credentials", "https://ops.example")
		if status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://ops.example" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "DELETE") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight from a listed origin: %d %v", status, h)
		}
		if h, _ := preflight(t, ts.base+"/api/v1/devices", "https://evil.example"); len(accessControl(h)) != 0 {
			t.Fatalf("preflight from another origin answered with %v", accessControl(h))
		}
	})
}

// TestHTTPBodyTimeout: a request body that stalls is cut off; one that keeps coming slowly goes
// through; once the body is read, a handler may take longer than the timeout; the event stream
// (no body) outlives it.
func TestHTTPBodyTimeout(t *testing.T) {
	t.Parallel() // waits more than it computes; shares no state (service_test.go: parallel tests)
	const d = 300 * time.Millisecond
	ts := startService(t, t.TempDir(), "", "--http-body-timeout", d.String())
	addr := ts.svc.httpLn.Addr().String()
	body := `{"psk": {"identity": "slow-id", "key": "736c6f776b6579"}}`
	send := func(t *testing.T, pause time.Duration, parts int) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /api/v1/devices/slow-1/credentials HTTP/1.1\r\nHost: lwota\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", testAdminToken, len(body))
		step := len(body)/parts + 1
		for i := 0; i < len(body); i += step {
			time.Sleep(pause)
			if _, err := io.WriteString(c, body[i:min(i+step, len(body))]); err != nil {
				break
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		status, _ := bufio.NewReader(c).ReadString('\n')
		return status
	}
	t.Run("slow but steady", func(t *testing.T) {
		if status := send(t, d/3, 6); !strings.Contains(status, " 204 ") {
			t.Fatalf("a body sent in 6 parts %v apart: %q", d/3, status)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT /api/v1/devices/slow-2/credentials HTTP/1.1\r\nHost: lwota\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", testAdminToken, len(body), body[:10])
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		answer, _ := io.ReadAll(c) // the server answers (or not) and closes
		if time.Since(start) > 20*time.Second || !strings.Contains(string(answer), " 408 ") || !strings.Contains(string(answer), "request_timeout") {
			t.Fatalf("stalled body: %q after %v; want 408 request_timeout", answer, time.Since(start))
		}
	})
	t.Run("event stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events := ts.sseEvents(t, ctx, "")
		time.Sleep(3 * d)
		client := sysdeps.Require(t, "coap-client-notls")
		out, _ := exec.Command(client, "-m", "post", "-t", "40", "-B", "5", "-e", "</1/0>,</3/0>",
			fmt.Sprintf("coap://%s/rd?ep=sse-dev&lt=60&lwm2m=1.1", ts.coap)).CombinedOutput()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the event stream ended (registration output %q)", out)
				}
				if ev["endpoint"] == "sse-dev" {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no event for sse-dev (registration output %q)", out)
			}
		}
	})
}

// TestBodyTimeoutLifted: once the body has been read, the deadline is gone: a handler that
// then works longer than the timeout keeps its request context and answers.
func TestBodyTimeoutLifted(t *testing.T) {
	const d = 100 * time.Millisecond
	srv := httptest.NewServer(withBodyTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(5 * d):
		case <-r.Context().Done():
			http.Error(w, "canceled", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "read %d bytes", len(b))
	}), d))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "read 5 bytes" {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
}

// TestBodyTimeoutStalled: the handler's read of a stalled body fails after the timeout; its
// answer is sent and the connection closed.
func TestBodyTimeoutStalled(t *testing.T) {
	const d = 100 * time.Millisecond
	readErr := make(chan error, 1)
	srv := httptest.NewServer(withBodyTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		http.Error(w, "stalled", http.StatusRequestTimeout)
	}), d))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("reading a stalled body succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the body read did not time out")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := io.ReadAll(c) // the answer, then the server closes the connection
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408 ") || err != nil {
		t.Fatalf("answer %q, %v", answer, err)
	}
}
