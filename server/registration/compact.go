package registration

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwota/lwota/server/transport"
)

// The registry holds one record per live device, so what each costs decides how many devices a
// node holds (a quarter of a million idle devices is the goal, at most 2 KiB each). This file
// keeps that record small: one map entry per endpoint with the device's uplink time and
// reachability inline (not two more maps of pointers to atomics), address keys without
// pointers (the garbage collector skips them), and object lists shared between the devices that
// register with the same one (a fleet of one model sends the same list, byte for byte).

// device is the registry's record of one live registration.
type device struct {
	// reg is the current snapshot. Replaced (never changed) under the registry's write lock,
	// with setReg; read under its read lock.
	reg *Registration
	// expires is reg.ExpiresAt(), kept beside the pointer so that the scan for lapsed
	// lifetimes (ExpireNow, over every live device once per ExpiryInterval, under the read lock)
	// reads the record alone: following reg to its snapshot and adding up its times made that
	// scan cost ~1 µs per device on a loaded machine, 100 ms a second at 100,000 devices.
	expires time.Time
	// seen is the last uplink, unix nanoseconds: an atomic, so that the per-datagram update
	// needs only the registry's read lock.
	seen atomic.Int64
	// unreachable is when the device stopped answering, unix nanoseconds; 0 while it answers
	// (reach.go).
	unreachable atomic.Int64
}

// newDevice returns the record of reg as it is indexed: last seen at reg.LastSeen, reachable.
func newDevice(reg *Registration) *device {
	d := &device{}
	d.setReg(reg)
	d.seen.Store(reg.LastSeen.UnixNano())
	return d
}

// setReg makes reg the device's snapshot; the caller holds the registry's write lock (or owns d).
func (d *device) setReg(reg *Registration) {
	d.reg = reg
	d.expires = reg.ExpiresAt()
}

// addrKey is a transport.Addr as a pointer-free map key: 20 bytes where transport.Addr is 48
// (a network string and a netip.AddrPort, which holds a pointer). Addresses it cannot say
// exactly (an IPv6 zone, a network it does not know) have no key: the registry keeps those in a
// map keyed by transport.Addr itself.
type addrKey struct {
	ip   [16]byte
	port uint16
	// netw is the network's code (networkCode) in the low bits, plus addrIs4 for an IPv4
	// address (which As16 writes as its IPv4-mapped IPv6 form).
	netw uint8
}

const addrIs4 = 0x80

// networkCode numbers the networks an addrKey can hold (0: none). A switch, not a map: keyOf
// runs for every datagram (Seen), and a map lookup hashes the network's name each time.
func networkCode(n transport.Network) uint8 {
	switch n {
	case transport.UDP:
		return 1
	case transport.DTLS:
		return 2
	case transport.TCP:
		return 3
	case transport.TLS:
		return 4
	}
	return 0
}

// keyOf returns a's key, or false when a has none.
func keyOf(a transport.Addr) (addrKey, bool) {
	code := networkCode(a.Network)
	ip := a.AddrPort.Addr()
	if code == 0 || ip.Zone() != "" || !ip.IsValid() {
		return addrKey{}, false
	}
	k := addrKey{ip: ip.As16(), port: a.AddrPort.Port(), netw: code}
	if ip.Is4() {
		k.netw |= addrIs4
	}
	return k, true
}

// addrIndex maps source addresses to devices.
type addrIndex struct {
	m     map[addrKey]*device
	other map[transport.Addr]*device // addresses without an addrKey
}

func newAddrIndex() addrIndex {
	return addrIndex{m: make(map[addrKey]*device), other: make(map[transport.Addr]*device)}
}

func (x *addrIndex) get(a transport.Addr) (*device, bool) {
	if k, ok := keyOf(a); ok {
		d, ok := x.m[k]
		return d, ok
	}
	d, ok := x.other[a]
	return d, ok
}

func (x *addrIndex) set(a transport.Addr, d *device) {
	if k, ok := keyOf(a); ok {
		x.m[k] = d
		return
	}
	x.other[a] = d
}

func (x *addrIndex) delete(a transport.Addr) {
	if k, ok := keyOf(a); ok {
		delete(x.m, k)
		return
	}
	delete(x.other, a)
}

func (x *addrIndex) len() int { return len(x.m) + len(x.other) }

// objectLists shares parsed object lists between registrations that sent the same payload.
// Registrations are read-only snapshots, so the slices are never written; they are clipped, so
// that an append by a reader copies instead of writing into the shared array. The table is
// bounded: once it holds maxSharedLists lists, other payloads are parsed for themselves.
type objectLists struct {
	mu sync.Mutex
	m  map[string]objectList
}

// maxSharedLists bounds the shared object lists: a fleet has a few per model and firmware.
const maxSharedLists = 4096

// parse returns the object list of payload, parsed with at most maxObjects objects: the shared
// one when the same payload was parsed before under the same limit.
func (s *objectLists) parse(payload []byte, maxObjects int) (objectList, error) {
	s.mu.Lock()
	ol, ok := s.m[string(payload)]
	s.mu.Unlock()
	if ok && len(ol.objects) <= maxObjects {
		return ol, nil
	}
	ol, err := parseObjectList(payload, maxObjects)
	if err != nil {
		return ol, err
	}
	ol.formats = slices.Clip(ol.formats)
	ol.objects = slices.Clip(ol.objects)
	for i := range ol.objects {
		ol.objects[i].Version = intern(ol.objects[i].Version)
	}
	ol.rootPath = intern(ol.rootPath)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]objectList)
	}
	if len(s.m) < maxSharedLists {
		s.m[string(payload)] = ol
	}
	s.mu.Unlock()
	return ol, nil
}

// internParams shares the text of the registration parameters many devices send alike: the
// LwM2M version and the binding (otherwise each registration keeps the query option it was cut
// from).
func internParams(reg *Registration) {
	reg.Version = intern(reg.Version)
	reg.Binding = intern(reg.Binding)
}
