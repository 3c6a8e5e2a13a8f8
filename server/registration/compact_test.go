package registration

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// TestAddrIndexAnswersLikeAMap checks that the compact address index finds exactly what a map
// keyed by transport.Addr finds: addresses that differ only in network, in IPv4 against its
// IPv4-mapped IPv6 form, in port, or in an IPv6 zone stay apart, and networks or zones the
// compact key cannot hold still work.
func TestAddrIndexAnswersLikeAMap(t *testing.T) {
	addr := func(network transport.Network, s string) transport.Addr {
		return transport.Addr{Network: network, AddrPort: netip.MustParseAddrPort(s)}
	}
	stored := []transport.Addr{
		addr(transport.UDP, "127.0.0.1:5683"),
		addr(transport.DTLS, "127.0.0.1:5684"),
		addr(transport.TCP, "10.0.0.1:5683"),
		addr(transport.TLS, "[2001:db8::1]:5684"),
		addr(transport.UDP, "[fe80::1%eth0]:5683"),
		addr("sms", "127.0.0.1:1"),
	}
	lookups := []struct {
		name string
		a    transport.Addr
		want int // index into stored, -1: absent
	}{
		{"ipv4 udp", addr(transport.UDP, "127.0.0.1:5683"), 0},
		{"same address over dtls", addr(transport.DTLS, "127.0.0.1:5683"), -1},
		{"dtls", addr(transport.DTLS, "127.0.0.1:5684"), 1},
		{"udp on the dtls port", addr(transport.UDP, "127.0.0.1:5684"), -1},
		{"ipv4-mapped ipv6 of an ipv4 peer", addr(transport.UDP, "[::ffff:127.0.0.1]:5683"), -1},
		{"another port", addr(transport.UDP, "127.0.0.1:5685"), -1},
		{"tcp", addr(transport.TCP, "10.0.0.1:5683"), 2},
		{"tls ipv6", addr(transport.TLS, "[2001:db8::1]:5684"), 3},
		{"zoned ipv6", addr(transport.UDP, "[fe80::1%eth0]:5683"), 4},
		{"same ipv6 in another zone", addr(transport.UDP, "[fe80::1%eth1]:5683"), -1},
		{"same ipv6 without a zone", addr(transport.UDP, "[fe80::1]:5683"), -1},
		{"unknown network", addr("sms", "127.0.0.1:1"), 5},
		{"unknown network, another port", addr("sms", "127.0.0.1:2"), -1},
	}
	x := newAddrIndex()
	ref := map[transport.Addr]*device{}
	devs := make([]*device, len(stored))
	for i, a := range stored {
		devs[i] = &device{reg: &Registration{Endpoint: a.String()}}
		x.set(a, devs[i])
		ref[a] = devs[i]
	}
	for _, tc := range lookups {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := x.get(tc.a)
			want, wantOK := ref[tc.a]
			if ok != wantOK || got != want {
				t.Fatalf("get(%v) = %v, %v; a map says %v, %v", tc.a, got, ok, want, wantOK)
			}
			if tc.want >= 0 && got != devs[tc.want] || tc.want < 0 && ok {
				t.Fatalf("get(%v) = %v, %v; want stored[%d]", tc.a, got, ok, tc.want)
			}
		})
	}
	for _, a := range stored {
		x.delete(a)
	}
	if n := x.len(); n != 0 {
		t.Fatalf("%d addresses left after deleting every one", n)
	}
}

// TestSharedObjectListsAreTheParse checks that the shared object lists give what parsing gives,
// that the same payload shares its slices, and that a reader appending to one registration's
// list does not change another's.
func TestSharedObjectListsAreTheParse(t *testing.T) {
	payloads := []struct {
		name    string
		payload string
		max     int
		wantErr bool
	}{
		{"plain", `</1/0>,</3/0>,</5/0>`, 64, false},
		{"root and versions", `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</5>;ver=1.1,</5/0>`, 64, false},
		{"alternate path", `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>`, 64, false},
		{"over the limit", `</1/0>,</3/0>,</5/0>`, 2, true},
		{"bad link", `</1/0`, 64, true},
	}
	var s objectLists
	for _, tc := range payloads {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := parseObjectList([]byte(tc.payload), tc.max)
			for range 2 { // the second parse is answered from the table
				got, err := s.parse([]byte(tc.payload), tc.max)
				if (err != nil) != tc.wantErr || (wantErr != nil) != tc.wantErr {
					t.Fatalf("parse: %v, parseObjectList: %v, want error %t", err, wantErr, tc.wantErr)
				}
				if err == nil && !reflect.DeepEqual(got, want) {
					t.Fatalf("parse = %+v, parseObjectList = %+v", got, want)
				}
			}
		})
	}
	// The limit applies to a list parsed before under a larger one.
	if _, err := s.parse([]byte(`</1/0>,</3/0>,</5/0>`), 2); err == nil {
		t.Fatal("a shared list over the limit was accepted")
	}
	payload := []byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</5>;ver=1.1`)
	a, err := s.parse(payload, 64)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.parse(append([]byte(nil), payload...), 64)
	if err != nil {
		t.Fatal(err)
	}
	if &a.objects[0] != &b.objects[0] || &a.formats[0] != &b.formats[0] {
		t.Fatal("the same payload did not share its parsed lists")
	}
	grown := append(a.objects, ObjectLink{Version: "9.9"})
	_ = append(a.formats, 42)
	if len(b.objects) != 3 || b.objects[2].Version != "1.1" || &grown[0] == &b.objects[0] || b.formats[0] != 11543 {
		t.Fatalf("an append to one registration's list changed the shared one: %+v %v", b.objects, b.formats)
	}
}

// TestDeviceRecordFollowsTheRegistration walks one device through the registry's public API and
// checks what its compact record answers at each step: the uplink time Seen records (and the
// wake-up it reports), the unreachable mark and what clears it, and the lookups by address and
// id after an Update, a re-registration from another address and a De-register.
func TestDeviceRecordFollowsTheRegistration(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := New(memStore{}, nil, DefaultConfig(), nil, nil, clock)
	ctx := context.Background()
	at := func(port uint16) transport.Peer {
		return transport.Peer{Addr: transport.Addr{Network: transport.UDP, AddrPort: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}}
	}
	reg, err := r.register(ctx, at(1000), []string{"ep=dev-1", "lt=600"}, 40, []byte(`</1/0>,</3/0>`))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func()
		// what the record answers afterwards
		seenFrom  uint16 // Seen from this port must find dev-1 (0: must find nothing at 1000)
		lastSeen  time.Time
		unreached bool
	}{
		{"registered", func() {}, 1000, now, false},
		{"a datagram later", func() { now = now.Add(time.Minute); r.Seen(at(1000).Addr, time.Hour) }, 1000, now.Add(time.Minute), false},
		{"marked unreachable", func() { now = now.Add(time.Second); r.MarkUnreachable("dev-1") }, 1000, now.Add(time.Minute), true},
		{"an uplink clears the mark", func() { r.Seen(at(1000).Addr, time.Hour) }, 1000, now.Add(time.Minute + time.Second), false},
		{"unreachable, then an Update", func() {
			r.MarkUnreachable("dev-1")
			now = now.Add(time.Minute)
			if _, err := r.update(ctx, reg.ID, at(1000), nil, -1, nil); err != nil {
				t.Fatal(err)
			}
		}, 1000, now.Add(2*time.Minute + time.Second), false},
		{"re-registered from another port", func() {
			var err error
			if reg, err = r.register(ctx, at(2000), []string{"ep=dev-1", "lt=600"}, 40, []byte(`</1/0>,</3/0>`)); err != nil {
				t.Fatal(err)
			}
		}, 2000, now.Add(2*time.Minute + time.Second), false},
		{"de-registered", func() {
			if _, err := r.deregister(ctx, reg.ID, at(2000)); err != nil {
				t.Fatal(err)
			}
		}, 0, time.Time{}, false},
	}
	for _, st := range steps {
		st.do()
		if st.seenFrom == 0 {
			if _, ok := r.Get("dev-1"); ok {
				t.Fatalf("%s: Get still finds dev-1", st.name)
			}
			for _, p := range []uint16{1000, 2000} {
				if ep, _ := r.Seen(at(p).Addr, time.Hour); ep != "" {
					t.Fatalf("%s: Seen from port %d finds %q", st.name, p, ep)
				}
			}
			if _, err := r.lookupForPeer(reg.ID, at(2000)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: lookup by id: %v", st.name, err)
			}
			continue
		}
		got, ok := r.Get("dev-1")
		if !ok {
			t.Fatalf("%s: Get finds nothing", st.name)
		}
		if !got.LastSeen.Equal(st.lastSeen) {
			t.Fatalf("%s: LastSeen %v, want %v", st.name, got.LastSeen, st.lastSeen)
		}
		if got.UnreachableSince.IsZero() == st.unreached {
			t.Fatalf("%s: UnreachableSince %v, want marked %t", st.name, got.UnreachableSince, st.unreached)
		}
		if bp, ok := r.ByPeer(at(st.seenFrom)); !ok || bp.ID != reg.ID {
			t.Fatalf("%s: ByPeer from port %d: %v, %t", st.name, st.seenFrom, bp, ok)
		}
		if other := 3000 - st.seenFrom; other > 0 && other < 3000 {
			if _, ok := r.ByPeer(at(other)); ok {
				t.Fatalf("%s: ByPeer finds dev-1 from port %d too", st.name, other)
			}
		}
		if cur, err := r.lookupForPeer(reg.ID, at(st.seenFrom)); err != nil || cur.Endpoint != "dev-1" {
			t.Fatalf("%s: lookup by id: %v, %v", st.name, cur, err)
		}
	}
	// A wake-up: silent for longer than quiet.
	if _, err := r.register(ctx, at(1000), []string{"ep=dev-2", "lt=600"}, 40, []byte(`</1/0>`)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second)
	if ep, woke := r.Seen(at(1000).Addr, 5*time.Second); ep != "dev-2" || !woke {
		t.Fatalf("Seen after 10 s of silence = %q, woke %t; want dev-2, true", ep, woke)
	}
	if ep, woke := r.Seen(at(1000).Addr, 5*time.Second); ep != "dev-2" || woke {
		t.Fatalf("Seen right after = %q, woke %t; want dev-2, false", ep, woke)
	}
}

// memStore is a Store that keeps nothing: the registry under test holds the state.
type memStore struct{}

func (memStore) SaveRegistration(context.Context, *Registration) error      { return nil }
func (memStore) LoadRegistrations(context.Context) ([]*Registration, error) { return nil, nil }
func (memStore) GetRegistration(context.Context, string) (*Registration, error) {
	return nil, ErrNotFound
}
func (memStore) ListRegistrations(context.Context, Filter) ([]*Registration, error) { return nil, nil }
