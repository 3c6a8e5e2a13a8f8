package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
)

// sseClient is one open event stream on a real loopback server.
type sseClient struct {
	t       *testing.T
	resp    *http.Response
	lines   chan string
	cancel  context.CancelFunc
	handled chan struct{} // closed when the server's handler returned
}

func openStream(t *testing.T, env *testEnv, query string) *sseClient {
	t.Helper()
	handled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.h.ServeHTTP(w, r)
		if r.URL.Path == "/api/v1/events" {
			close(handled)
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, resp: resp, lines: make(chan string, 64), cancel: cancel, handled: handled}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	waitFor(t, env.sub.subscribed, "subscription")
	if l := c.next(); l != ": connected" {
		t.Fatalf("first line %q, want the connected comment", l)
	}
	return c
}

// next returns the next non-empty line; the timeout only guards against a hung test.
func (c *sseClient) next() string {
	c.t.Helper()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "<EOF>"
			}
			if l != "" {
				return l
			}
		case <-time.After(5 * time.Second):
			c.t.Fatalf("no line from the event stream")
		}
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestEventStream(t *testing.T) {
	env := newTestEnv(t, Config{KeepAlive: time.Hour})
	c := openStream(t, env, "?endpoint=urn%3Aimei%3A1")

	env.sub.publish(events.Event{Type: events.TypeRegistered, Endpoint: "urn:imei:2", Time: testNow}) // filtered out
	env.sub.publish(events.Event{Type: events.TypeNotification, Endpoint: "urn:imei:1", Time: testNow,
		Data: []lwm2m.Record{rec("/3303/0/5700", lwm2m.Float(21.5))}})
	env.sub.publish(events.Event{Type: events.TypeRequestDone, Endpoint: "urn:imei:1", Time: testNow,
		Data: &dm.Pending{ID: "7", State: dm.PendingDone, Request: dm.Request{Op: dm.OpRead, Path: lwm2m.MustParsePath("/3/0")}}})
	env.sub.publish(events.Event{Type: "odd\ntype", Endpoint: "urn:imei:1", Time: testNow, Data: map[string]int{"n": 1}})

	if l := c.next(); l != "event: notification" {
		t.Fatalf("line %q, want the notification (the other endpoint's event is filtered)", l)
	}
	data := strings.TrimPrefix(c.next(), "data: ")
	jsonEqual(t, []byte(data), `{"type":"notification","endpoint":"urn:imei:1","time":"2026-03-01T12:00:00Z",
		"data":[{"path":"/3303/0/5700","type":"float","value":21.5}]}`)
	if l := c.next(); l != "event: request" {
		t.Fatalf("line %q, want the request event", l)
	}
	var ev struct{ Data pendingJSON }
	decodeJSON(t, []byte(strings.TrimPrefix(c.next(), "data: ")), &ev)
	if ev.Data.RequestID != "7" || ev.Data.State != "done" || ev.Data.Path != "/3/0" {
		t.Fatalf("request event data %+v", ev.Data)
	}
	if l := c.next(); l != "event: odd type" {
		t.Fatalf("line %q, want the event type kept on one line", l)
	}
	if l := c.next(); !strings.HasPrefix(l, "data: ") || !json.Valid([]byte(l[6:])) {
		t.Fatalf("line %q, want JSON data", l)
	}

	// The client leaves: the handler returns and the subscription ends, so no goroutine is left behind.
	c.cancel()
	waitFor(t, c.handled, "the handler to return after the client left")
	waitFor(t, env.sub.ended, "the subscription to end")
}

func TestEventStreamKeepAlive(t *testing.T) {
	env := newTestEnv(t, Config{KeepAlive: 5 * time.Millisecond})
	c := openStream(t, env, "")
	if l := c.next(); l != ": keepalive" {
		t.Fatalf("line %q, want a keepalive comment", l)
	}
	env.sub.publish(events.Event{Type: events.TypeExpired, Endpoint: "dev-a", Time: testNow})
	for {
		l := c.next()
		if l == ": keepalive" {
			continue
		}
		if l != "event: expired" {
			t.Fatalf("line %q, want the expired event", l)
		}
		break
	}
}

func TestEventStreamEndsWithBus(t *testing.T) {
	env := newTestEnv(t, Config{KeepAlive: time.Hour})
	c := openStream(t, env, "")
	env.sub.closeAll() // the bus shuts down
	if l := c.next(); l != "<EOF>" {
		t.Fatalf("line %q, want the end of the stream", l)
	}
	waitFor(t, c.handled, "the handler to return")
}
