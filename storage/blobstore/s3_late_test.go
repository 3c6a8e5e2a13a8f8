package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/storage/blobstore"
	"github.com/lwota/lwota/storage/s3test"
)

// lateServer stands between the S3 client and versitygw as a server slow to store parts: it
// receives an UploadPart's whole body and starts storing it at once, but the last byte reaches
// versitygw only once the upload was aborted or hold has passed, whether or not the client
// still waits for the answer. That is a busy server with a part in progress: a client giving
// up does not stop it, and neither does an abort.
type lateServer struct {
	proxy    *httputil.ReverseProxy
	upstream *url.URL
	url      string // where clients reach it
	hold     time.Duration
	received chan struct{} // one per part body received whole

	mu      sync.Mutex
	aborted map[string]chan struct{} // by upload id: closed once the abort is through
	late    sync.WaitGroup           // parts still being stored
}

func newLateServer(t *testing.T, upstream string, hold time.Duration) *lateServer {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy keeps the client's Host header, so its signature stays valid upstream.
	l := &lateServer{proxy: httputil.NewSingleHostReverseProxy(u), upstream: u, hold: hold,
		received: make(chan struct{}, 64), aborted: map[string]chan struct{}{}}
	srv := httptest.NewServer(l)
	t.Cleanup(func() { srv.Close(); l.late.Wait() })
	l.url = srv.URL
	return l
}

func (l *lateServer) abortedChan(id string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.aborted[id]
	if !ok {
		ch = make(chan struct{})
		l.aborted[id] = ch
	}
	return ch
}

func (l *lateServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("uploadId")
	switch {
	case r.Method == http.MethodPut && id != "" && q.Get("partNumber") != "":
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) == 0 {
			return // the client went away before sending it all: nothing to store
		}
		l.received <- struct{}{}
		gate := make(chan struct{})
		go func() {
			select {
			case <-l.abortedChan(id):
			case <-time.After(l.hold):
			}
			close(gate)
		}()
		out := r.Clone(context.Background()) // stored whether or not the client still waits
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = l.upstream.Scheme, l.upstream.Host
		out.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)-1]), &gated{gate: gate, last: body[len(body)-1:]}))
		out.ContentLength = int64(len(body))
		l.late.Add(1)
		done := make(chan *http.Response, 1)
		go func() {
			defer l.late.Done()
			resp, err := http.DefaultTransport.RoundTrip(out)
			if err != nil {
				resp = &http.Response{StatusCode: http.StatusBadGateway, Body: io.NopCloser(bytes.NewReader(nil))}
			}
			done <- resp
		}()
		select {
		case resp := <-done:
			defer resp.Body.Close()
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		case <-r.Context().Done(): // the client gave up; the part goes on
		}
	case r.Method == http.MethodDelete && id != "":
		l.proxy.ServeHTTP(w, r)
		ch := l.abortedChan(id)
		l.mu.Lock()
		select {
		case <-ch:
		default:
			close(ch) // parts in progress end after the abort went through
		}
		l.mu.Unlock()
	default:
		l.proxy.ServeHTTP(w, r)
	}
}

// gated yields last once gate is closed.
type gated struct {
	gate chan struct{}
	last []byte
}

func (g *gated) Read(b []byte) (int, error) {
	if len(g.last) == 0 {
		return 0, io.EOF
	}
	<-g.gate
	n := copy(b, g.last)
	g.last = g.last[n:]
	return n, nil
}

// partsThenFail yields n bytes, then waits until the server has received want part bodies
// whole, and fails: the source breaks while those parts are on their way.
type partsThenFail struct {
	r        io.Reader
	received chan struct{}
	want     int
	err      error
}

func (p *partsThenFail) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != io.EOF {
		return n, err
	}
	timeout := time.After(30 * time.Second)
	for range p.want {
		select {
		case <-p.received:
		case <-timeout:
			return 0, errors.New("the server did not receive the parts in flight")
		}
	}
	return 0, p.err
}

// A source that breaks while parts are on their way to a slow server: the failed Put lets them
// be stored before it aborts the upload, so no part lands after the abort and nothing is left
// in the bucket. (It used to cut them; the server stored them after the abort, and the
// upload's directory was back in the bucket: "directory not empty" when CI removed it.)
func TestS3FailedPutLeavesNoLatePart(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	late := newLateServer(t, srv.Endpoint, 2*time.Second)
	cfg := s3Config(srv)
	cfg.Endpoint = late.url
	ctx := testCtx(t, 45*time.Second)
	s, err := blobstore.OpenS3(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	errSource := errors.New("source broke")
	// Two parts in flight (Concurrency 2), then the source fails reading the third.
	src := &partsThenFail{r: io.LimitReader(zeros{}, 2*blobstore.MinPartSize+1000), received: late.received, want: 2, err: errSource}
	if _, err := s.Put(ctx, "late", src); !errors.Is(err, errSource) {
		t.Fatalf("Put = %v, want the source's error", err)
	}
	late.late.Wait() // every part the server received is stored by now
	if ups, err := s.Uploads(ctx); err != nil || len(ups) != 0 {
		t.Errorf("uploads after the failed Put: %+v, %v", ups, err)
	}
	var left []string
	err = filepath.WalkDir(filepath.Join(srv.Dir, srv.Bucket), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("files left in the bucket after the failed Put: %v", left)
	}
}
