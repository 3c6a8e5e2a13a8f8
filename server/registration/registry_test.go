package registration_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
	"github.com/lwota/lwota/storage/sqlstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recorder) Registered(reg *registration.Registration, prev *registration.Registration) {
	if prev != nil {
		r.add("re-registered " + reg.Endpoint)
		return
	}
	r.add("registered " + reg.Endpoint)
}
func (r *recorder) Updated(reg *registration.Registration) { r.add("updated " + reg.Endpoint) }
func (r *recorder) Deregistered(reg *registration.Registration, expired bool) {
	if expired {
		r.add("expired " + reg.Endpoint)
		return
	}
	r.add("deregistered " + reg.Endpoint)
}
func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

type fixture struct {
	store *sqlstore.Store
	reg   *registration.Registry
	clock *clock
	rec   *recorder
	path  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "reg.db")
	f := &fixture{clock: &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}, rec: &recorder{}, path: path}
	f.open(t)
	return f
}

// open (re)opens the store and a fresh registry on it, as a restart of lwota does.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), f.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	f.reg = registration.New(st, f.rec, registration.DefaultConfig(), nil, nil, f.clock.Now)
	if _, err := f.reg.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func peer(port uint16, identity string) transport.Peer {
	return transport.Peer{Addr: transport.Addr{Network: transport.UDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}, Identity: identity}
}

func request(code transport.Code, path string, payload string, query ...string) *transport.Message {
	m := transport.NewMessage(code)
	m.Path = path
	m.Query = query
	if payload != "" {
		m.ContentFormat = 40
		m.Payload = []byte(payload)
	}
	return m
}

func (f *fixture) do(from transport.Peer, req *transport.Message) *transport.Message {
	return f.reg.ServeCoAP(context.Background(), from, req)
}

func TestRegisterUpdateDeregister(t *testing.T) {
	f := newFixture(t)
	dev := peer(40000, "")
	resp := f.do(dev, request(transport.POST, "/rd", "</1/0>,</3/0>,</5>;ver=1.1,</5/0>", "ep=dev-1", "lt=60", "lwm2m=1.2", "b=U"))
	if resp.Code != transport.Created || len(resp.LocationPath) != 2 || resp.LocationPath[0] != "rd" {
		t.Fatalf("register answered %s %v", resp.Code, resp.LocationPath)
	}
	id := resp.LocationPath[1]
	stored, err := f.store.GetRegistration(context.Background(), "dev-1")
	if err != nil {
		t.Fatalf("registration not stored before the answer: %v", err)
	}
	if stored.ID != id || stored.Lifetime != 60 || stored.Version != "1.2" || stored.ObjectVersion(5) != "1.1" || stored.Addr != dev.Addr {
		t.Fatalf("stored = %+v", stored)
	}

	// An Update from a new port (NAT rebinding) moves the device and extends its lifetime.
	f.clock.Add(50 * time.Second)
	moved := peer(40001, "")
	if resp := f.do(moved, request(transport.POST, "/rd/"+id, "", "lt=120", "b=UQ")); resp.Code != transport.Changed {
		t.Fatalf("update answered %s", resp.Code)
	}
	live, ok := f.reg.Get("dev-1")
	if !ok || live.Lifetime != 120 || !live.QueueMode || live.Addr != moved.Addr || !live.UpdatedAt.Equal(f.clock.Now()) {
		t.Fatalf("after update = %+v", live)
	}
	if resp := f.do(moved, request(transport.POST, "/rd/"+id, "", "ep=other")); resp.Code != transport.BadRequest {
		t.Fatalf("update with ep answered %s, want 4.00", resp.Code)
	}

	if resp := f.do(moved, request(transport.DELETE, "/rd/"+id, "")); resp.Code != transport.Deleted {
		t.Fatalf("deregister answered %s", resp.Code)
	}
	if _, ok := f.reg.Get("dev-1"); ok {
		t.Fatal("de-registered device still live")
	}
	gone, err := f.store.GetRegistration(context.Background(), "dev-1")
	if err != nil || gone.DeregisteredAt.IsZero() || gone.Online(f.clock.Now()) {
		t.Fatalf("stored after deregister = %+v, %v", gone, err)
	}
	if resp := f.do(moved, request(transport.DELETE, "/rd/"+id, "")); resp.Code != transport.NotFound {
		t.Fatalf("second deregister answered %s, want 4.04", resp.Code)
	}
	want := []string{"registered dev-1", "updated dev-1", "deregistered dev-1"}
	if got := f.rec.list(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("listener heard %v, want %v", got, want)
	}
}

func TestReRegisterReplaces(t *testing.T) {
	f := newFixture(t)
	first := f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-2"))
	// After a firmware update devices often come back from a new port without de-registering.
	second := f.do(peer(40002, ""), request(transport.POST, "/rd", "</3/0>,</5/0>", "ep=dev-2", "lwm2m=1.1"))
	if first.Code != transport.Created || second.Code != transport.Created {
		t.Fatalf("registers answered %s, %s", first.Code, second.Code)
	}
	if f.reg.Count() != 1 {
		t.Fatalf("registry holds %d registrations of one endpoint", f.reg.Count())
	}
	if resp := f.do(peer(40000, ""), request(transport.POST, "/rd/"+first.LocationPath[1], "")); resp.Code != transport.NotFound {
		t.Fatalf("update of the replaced registration answered %s, want 4.04", resp.Code)
	}
	live, _ := f.reg.Get("dev-2")
	if live.ID != second.LocationPath[1] || len(live.Objects) != 2 || live.Version != "1.1" {
		t.Fatalf("live = %+v", live)
	}
}

func TestIdentityBoundRegistration(t *testing.T) {
	f := newFixture(t)
	resp := f.do(peer(40000, "psk-dev-3"), request(transport.POST, "/rd", "</3/0>", "ep=dev-3"))
	id := resp.LocationPath[1]
	for _, tc := range []struct {
		name string
		req  *transport.Message
	}{
		{"update", request(transport.POST, "/rd/"+id, "", "lt=10")},
		{"deregister", request(transport.DELETE, "/rd/"+id, "")},
	} {
		if resp := f.do(peer(40000, "psk-other"), tc.req); resp.Code != transport.Forbidden {
			t.Errorf("%s by another identity answered %s, want 4.03", tc.name, resp.Code)
		}
	}
	if _, ok := f.reg.Get("dev-3"); !ok {
		t.Fatal("another identity removed the registration")
	}
}

func TestBadRegistrationsChangeNothing(t *testing.T) {
	f := newFixture(t)
	big := make([]byte, 70<<10)
	for i := range big {
		big[i] = 'x'
	}
	tests := []struct {
		name string
		req  *transport.Message
		want transport.Code
	}{
		{"no endpoint", request(transport.POST, "/rd", "</3/0>", "lt=60"), transport.BadRequest},
		{"bad version", request(transport.POST, "/rd", "</3/0>", "ep=x", "lwm2m=2.0"), transport.PreconditionFailed},
		{"bad binding", request(transport.POST, "/rd", "</3/0>", "ep=x", "b=Z"), transport.BadRequest},
		{"wrong content format", func() *transport.Message {
			m := request(transport.POST, "/rd", "</3/0>", "ep=x")
			m.ContentFormat = 50
			return m
		}(), transport.BadRequest},
		{"oversized payload", request(transport.POST, "/rd", string(big), "ep=x"), transport.RequestEntityTooLarge},
		{"truncated link", request(transport.POST, "/rd", "</3/0", "ep=x"), transport.BadRequest},
		{"GET on rd", request(transport.GET, "/rd", ""), transport.MethodNotAllowed},
		{"unknown registration", request(transport.POST, "/rd/nope", ""), transport.NotFound},
		{"not rd", request(transport.POST, "/rdx", ""), transport.NotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(peer(40000, ""), tc.req)
			if resp.Code != tc.want {
				t.Fatalf("answered %s (%s), want %s", resp.Code, resp.Payload, tc.want)
			}
			if len(resp.Payload) == 0 {
				t.Error("no diagnostic payload")
			}
		})
	}
	if f.reg.Count() != 0 {
		t.Fatalf("bad registrations left %d registrations", f.reg.Count())
	}
	regs, err := f.store.LoadRegistrations(context.Background())
	if err != nil || len(regs) != 0 {
		t.Fatalf("store holds %d registrations, %v", len(regs), err)
	}
}

// A held registration (a firmware transfer in flight) outlives its lifetime until released.
func TestHoldKeepsRegistrationPastLifetime(t *testing.T) {
	f := newFixture(t)
	f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=busy", "lt=30"))
	release := f.reg.Hold("busy")
	again := f.reg.Hold("busy")
	f.clock.Add(31 * time.Second)
	if n := f.reg.ExpireNow(context.Background()); n != 0 {
		t.Fatalf("expired %d held registrations", n)
	}
	release()
	release() // idempotent: the second hold still counts
	if n := f.reg.ExpireNow(context.Background()); n != 0 {
		t.Fatalf("expired %d with one hold left", n)
	}
	again()
	if n := f.reg.ExpireNow(context.Background()); n != 1 {
		t.Fatalf("expired %d after every hold was released, want 1", n)
	}
	if _, ok := f.reg.Get("busy"); ok {
		t.Fatal("lapsed registration still live after release")
	}
}

func TestLifetimeExpiryAndRestart(t *testing.T) {
	f := newFixture(t)
	f.do(peer(40000, ""), request(transport.POST, "/rd", "</3/0>", "ep=short", "lt=30"))
	f.do(peer(40001, ""), request(transport.POST, "/rd", "</3/0>", "ep=long", "lt=3600"))

	// lwota restarts: both come back without registering again.
	f.open(t)
	if f.reg.Count() != 2 {
		t.Fatalf("after restart %d registrations, want 2", f.reg.Count())
	}
	f.clock.Add(31 * time.Second)
	if n := f.reg.ExpireNow(context.Background()); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	if _, ok := f.reg.Get("short"); ok {
		t.Fatal("lapsed registration still live")
	}
	if _, ok := f.reg.Get("long"); !ok {
		t.Fatal("live registration expired")
	}
	got := f.rec.list()
	if got[len(got)-1] != "expired short" {
		t.Fatalf("listener heard %v", got)
	}
	// A restart after the lifetime ran out does not bring the lapsed device back.
	f.open(t)
	if f.reg.Count() != 1 {
		t.Fatalf("after second restart %d registrations, want 1", f.reg.Count())
	}
}

// TestByPeer: a device-initiated request outside /rd (Send) finds its registration by address
// and identity; a secured peer whose address moved under its DTLS session (connection ids) is
// still found by its identity, a plain peer from another address or another identity is not.
func TestByPeer(t *testing.T) {
	f := newFixture(t)
	f.do(peer(40000, "psk-dev-5"), request(transport.POST, "/rd", "</3/0>", "ep=dev-5"))
	f.do(peer(40010, ""), request(transport.POST, "/rd", "</3/0>", "ep=dev-6"))
	for _, tc := range []struct {
		name string
		from transport.Peer
		want string
	}{
		{"registered address and identity", peer(40000, "psk-dev-5"), "dev-5"},
		{"secured peer moved (CID)", peer(40001, "psk-dev-5"), "dev-5"},
		{"registered address, another identity", peer(40000, "psk-other"), ""},
		{"another address, another identity", peer(40002, "psk-other"), ""},
		{"plain peer at its address", peer(40010, ""), "dev-6"},
		{"plain peer moved", peer(40011, ""), ""},
		{"plain peer at a secured device's address", peer(40000, ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, ok := f.reg.ByPeer(tc.from)
			got := ""
			if ok {
				got = reg.Endpoint
			}
			if got != tc.want {
				t.Fatalf("ByPeer = %q, want %q", got, tc.want)
			}
		})
	}
	// De-registered: the identity no longer finds it.
	reg, _ := f.reg.Get("dev-5")
	f.do(peer(40000, "psk-dev-5"), request(transport.DELETE, "/rd/"+reg.ID, ""))
	if _, ok := f.reg.ByPeer(peer(40001, "psk-dev-5")); ok {
		t.Fatal("a de-registered identity still finds a registration")
	}
}
