package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
)

// The fakes below stand in for the server core: the API's job is translation, which they let us check
// exactly. End-to-end tests with the real server live in cmd/lwota.

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeDevices struct {
	mu      sync.Mutex
	regs    []*registration.Registration // sorted by endpoint
	err     error
	filters []registration.Filter
}

func (f *fakeDevices) Device(_ context.Context, endpoint string) (*registration.Registration, error) {
	if f.err != nil {
		return nil, f.err
	}
	for _, r := range f.regs {
		if r.Endpoint == endpoint {
			return r, nil
		}
	}
	return nil, registration.ErrNotFound
}

func (f *fakeDevices) ListDevices(_ context.Context, flt registration.Filter) ([]*registration.Registration, error) {
	f.mu.Lock()
	f.filters = append(f.filters, flt)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []*registration.Registration
	for _, r := range f.regs {
		switch {
		case !strings.HasPrefix(r.Endpoint, flt.EndpointPrefix):
		case flt.After != "" && r.Endpoint <= flt.After:
		case flt.Online != nil && r.Online(flt.Now) != *flt.Online:
		case flt.ObjectID != nil && !r.HasObject(*flt.ObjectID):
		case flt.FirmwareVersion != "" && r.FirmwareVersion != flt.FirmwareVersion:
		default:
			out = append(out, r)
		}
		if flt.Limit > 0 && len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeDevices) lastFilter(t *testing.T) registration.Filter {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.filters) == 0 {
		t.Fatalf("ListDevices was not called")
	}
	return f.filters[len(f.filters)-1]
}

type opCall struct {
	endpoint string
	req      dm.Request
}

type fakeOperator struct {
	mu       sync.Mutex
	calls    []opCall
	result   *dm.Result
	pending  *dm.Pending
	err      error
	panicMsg string
	stored   map[string]*dm.Pending
	asleep   bool // DoNow answers dm.ErrAsleep, as for a sleeping queue-mode device
}

// DoNow is Do for an awake device; a sleeping one (asleep) fails with dm.ErrAsleep and is not called.
func (f *fakeOperator) DoNow(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error) {
	f.mu.Lock()
	asleep := f.asleep
	f.mu.Unlock()
	if asleep {
		return nil, dm.ErrAsleep
	}
	res, _, err := f.Do(ctx, endpoint, req)
	return res, err
}

func (f *fakeOperator) Do(_ context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	f.mu.Lock()
	f.calls = append(f.calls, opCall{endpoint, req})
	f.mu.Unlock()
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	return f.result, f.pending, f.err
}

func (f *fakeOperator) Pending(_ context.Context, id string) (*dm.Pending, error) {
	if p, ok := f.stored[id]; ok {
		return p, nil
	}
	return nil, dm.ErrRequestNotFound
}

func (f *fakeOperator) onlyCall(t *testing.T) opCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 1 {
		t.Fatalf("Operator.Do called %d times, want 1: %+v", len(f.calls), f.calls)
	}
	return f.calls[0]
}

func (f *fakeOperator) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fakeObservations struct {
	obs    []*observe.Observation
	latest []*observe.Latest
	err    error
}

func (f *fakeObservations) Observations(context.Context, string) ([]*observe.Observation, error) {
	return f.obs, f.err
}

func (f *fakeObservations) Latest(context.Context, string) ([]*observe.Latest, error) {
	return f.latest, f.err
}

// fakeTypes is a small object model: objects 1 (Server), 3 (Device), 5 (Firmware) and 3303 (Temperature).
type fakeTypes map[[2]uint16]lwm2m.Type

func (f fakeTypes) ResourceType(obj, res uint16) (lwm2m.Type, bool) {
	t, ok := f[[2]uint16{obj, res}]
	return t, ok
}

var testTypes = fakeTypes{
	{1, 0}: lwm2m.TypeUnsignedInteger, {1, 1}: lwm2m.TypeUnsignedInteger, {1, 6}: lwm2m.TypeBoolean,
	{1, 7}: lwm2m.TypeString, {1, 8}: lwm2m.TypeNone,
	{3, 0}: lwm2m.TypeString, {3, 4}: lwm2m.TypeNone, {3, 9}: lwm2m.TypeInteger, {3, 13}: lwm2m.TypeTime,
	{3, 14}: lwm2m.TypeString,
	{5, 0}:  lwm2m.TypeOpaque, {5, 1}: lwm2m.TypeString, {5, 2}: lwm2m.TypeNone, {5, 3}: lwm2m.TypeInteger,
	{3303, 5700}: lwm2m.TypeFloat, {3303, 5701}: lwm2m.TypeString,
	{16, 0}: lwm2m.TypeObjlnk, {16, 1}: lwm2m.TypeCorelnk,
}

// fakeSubscriber hands out one channel per Subscribe and closes it when ctx ends, as events.Bus does.
type fakeSubscriber struct {
	mu         sync.Mutex
	chans      []chan events.Event
	subscribed chan struct{} // one value per Subscribe
	ended      chan struct{} // one value per ended subscription
}

func newFakeSubscriber() *fakeSubscriber {
	return &fakeSubscriber{subscribed: make(chan struct{}, 16), ended: make(chan struct{}, 16)}
}

func (f *fakeSubscriber) Subscribe(ctx context.Context) <-chan events.Event {
	ch := make(chan events.Event, 8)
	f.mu.Lock()
	f.chans = append(f.chans, ch)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		if i := slices.Index(f.chans, ch); i >= 0 { // closeAll may have closed it already
			f.chans = slices.Delete(f.chans, i, i+1)
			close(ch)
		}
		f.mu.Unlock()
		f.ended <- struct{}{}
	}()
	f.subscribed <- struct{}{}
	return ch
}

func (f *fakeSubscriber) publish(e events.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.chans {
		ch <- e
	}
}

// closeAll ends every subscription from the server side, as a shutting-down bus would.
func (f *fakeSubscriber) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.chans {
		close(ch)
	}
	f.chans = nil
}

type testEnv struct {
	api  *API
	h    http.Handler
	devs *fakeDevices
	op   *fakeOperator
	obs  *fakeObservations
	sub  *fakeSubscriber
	logs *bytes.Buffer
	auth *testAuth // tokens of every role; env.h sends the admin's unless the request has an Authorization header
}

func newTestEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	env := &testEnv{
		devs: &fakeDevices{regs: testRegistrations()},
		op:   &fakeOperator{result: &dm.Result{Code: "2.04"}, stored: map[string]*dm.Pending{}},
		obs:  &fakeObservations{},
		sub:  newFakeSubscriber(),
		logs: &bytes.Buffer{},
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: env.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.api = New(cfg, env.devs, env.op, env.obs, testTypes, env.sub, logger)
	env.auth = newTestAuth(t)
	env.api.WithAuth(env.auth.tokens, env.auth.log)
	env.h = env.auth.asAdmin(env.api.Handler())
	return env
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func testRegistrations() []*registration.Registration {
	mk := func(ep string, fw string, online bool, objs ...string) *registration.Registration {
		r := &registration.Registration{
			ID: "r-" + ep, Endpoint: ep, Version: "1.1", Lifetime: 300, Binding: "U", RootPath: "/",
			ContentFormats: []uint16{uint16(lwm2m.FormatTLV), uint16(lwm2m.FormatSenMLCBOR), 65000},
			RegisteredAt:   testNow.Add(-time.Hour), UpdatedAt: testNow.Add(-time.Minute), LastSeen: testNow.Add(-time.Minute),
			FirmwareVersion: fw,
		}
		if !online {
			r.UpdatedAt = testNow.Add(-time.Hour)
		}
		for _, o := range objs {
			ver := ""
			if o == "/5" {
				ver = "1.1"
			}
			r.Objects = append(r.Objects, registration.ObjectLink{Path: lwm2m.MustParsePath(o), Version: ver})
		}
		return r
	}
	return []*registration.Registration{
		mk("dev-a", "1.0.0", true, "/1/0", "/3/0", "/5"),
		mk("dev-b", "1.2.3", false, "/1/0", "/3/0"),
		mk("dev-c", "1.2.3", true, "/1/0", "/3/0", "/5"),
		mk("dev-d", "1.2.3", true, "/3/0"),
		mk("dev-e", "2.0.0", true, "/3/0", "/5"),
		mk("urn:imei:356938035643809", "1.2.3", true, "/1/0", "/3/0", "/5", "/3303/0"),
		mk("weird/name with space", "", true, "/3/0"),
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request through the API's handler. target is a URL as a client would send it (escaped).
func (env *testEnv) do(t *testing.T, method, target, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	env.h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// wantError checks status and the one error shape, and returns the message.
func wantError(t *testing.T, r response, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("error body %s: want exactly one top-level key \"error\"", r.body)
	}
	e := raw["error"]
	for k := range e {
		if k != "code" && k != "message" && k != "device_code" && k != "expected_at" {
			t.Fatalf("error body %s: unexpected key %q", r.body, k)
		}
	}
	if e["code"] != code {
		t.Fatalf("error code %v, want %q; body %s", e["code"], code, r.body)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Fatalf("error body %s: empty message", r.body)
	}
	return msg
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	decodeJSON(t, got, &g)
	decodeJSON(t, []byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("body\n got %s\nwant %s", gb, wb)
	}
}
