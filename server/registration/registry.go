package registration

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// Listener hears about registration changes after they are stored. Calls happen on the
// goroutine that handled the message, so implementations hand long work to their own goroutines.
type Listener interface {
	// Registered follows a Register; previous is the registration it replaced, or nil.
	Registered(r *Registration, previous *Registration)
	// Updated follows an Update.
	Updated(r *Registration)
	// Deregistered follows a De-register, or a lifetime running out (expired true).
	Deregistered(r *Registration, expired bool)
}

// Registry answers /rd requests and holds every live registration in memory. Registrations are
// shared as read-only snapshots: every change stores a new *Registration, so readers never lock.
type Registry struct {
	store    Store
	listener Listener
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	authz    atomic.Pointer[authorizerBox] // SetAuthorizer
	audit    atomic.Pointer[auditBox]      // SetAudit
	sharedFields
	// auditThrottle keeps NoSec refusals from flooding the audit log (nosec.go).
	auditThrottle noSecAudit

	infoReader atomic.Pointer[infoReaderBox] // SetInfoReader
	infoQueue  chan *Registration            // registrations whose Object 3 RunInfoReads reads
	// infoLater holds the endpoints whose read found the queue full (a burst of registrations):
	// the readers take them once the queue has room. Bounded by the number of devices.
	infoMu    sync.Mutex
	infoLater map[string]struct{}
	// infoFailed holds the endpoints whose last read failed: their next Update (the device is
	// awake then) reads again, and a device not in queue mode is also read again after a backoff
	// (a lost datagram on a loaded server must not leave it without its model until its next
	// Update, a lifetime away). Only these: a device that answered, even with an empty or
	// missing Device Type, is read at its next Register, never on every Update.
	infoFailed map[string]infoRetry

	// writeLocks serialize the read-modify-store of one endpoint's registration (Register,
	// Update, De-register, expiry, RecordDeviceInfo), so that a write built on an older
	// snapshot never lands after a newer one. Endpoints share locks by hash.
	writeLocks [1024]sync.Mutex

	// The index of live registrations, one compact record per device (compact.go). The last
	// uplink time and the reachability mark live in the record, apart from the snapshot, so
	// that every datagram does not copy a registration.
	mu         sync.RWMutex
	byEndpoint map[string]*device
	byID       map[string]*device // location id
	byAddr     addrIndex          // source address, for queue-mode wake-ups
	byIdentity map[string]*device // DTLS identity, for a secured peer whose address moved
	// lists shares the parsed object lists of registrations that sent the same one.
	lists objectLists
	// holds counts, per endpoint, the reasons (firmware transfers) not to let its lifetime lapse.
	holds map[string]int
	// started is when this registry was made: registrations loaded from the store are older.
	started time.Time
}

// New returns a registry over store. listener may be nil. now may be nil (time.Now).
func New(store Store, listener Listener, cfg Config, logger *slog.Logger, m *Metrics, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		store:      store,
		listener:   listener,
		cfg:        cfg,
		log:        logger,
		metrics:    m.orNop(),
		now:        now,
		byEndpoint: make(map[string]*device),
		byID:       make(map[string]*device),
		byAddr:     newAddrIndex(),
		byIdentity: make(map[string]*device),
		holds:      make(map[string]int),
		infoQueue:  make(chan *Registration, max(cfg.InfoReadQueue, 0)),
		infoLater:  make(map[string]struct{}),
		infoFailed: make(map[string]infoRetry),
		started:    now(),
	}
}

// writeLock returns the lock of endpoint's writes (FNV-1a of the name).
func (r *Registry) writeLock(endpoint string) *sync.Mutex {
	h := uint32(2166136261)
	for i := 0; i < len(endpoint); i++ {
		h ^= uint32(endpoint[i])
		h *= 16777619
	}
	return &r.writeLocks[h%uint32(len(r.writeLocks))]
}

// Hold keeps endpoint's registration from lapsing until release is called: a device busy
// downloading firmware over a slow link may miss its Update, and dropping it then would
// strand the transfer. A De-register or a new Register still takes effect. release is idempotent.
func (r *Registry) Hold(endpoint string) (release func()) {
	r.mu.Lock()
	r.holds[endpoint]++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.holds[endpoint]--; r.holds[endpoint] <= 0 {
				delete(r.holds, endpoint)
			}
			r.mu.Unlock()
		})
	}
}

// Load fills the registry from the store after a restart, so devices need not register again.
// Registrations whose lifetime ran out while lwota was down are left out.
func (r *Registry) Load(ctx context.Context) (int, error) {
	regs, err := r.store.LoadRegistrations(ctx)
	if err != nil {
		return 0, fmt.Errorf("load registrations: %w", err)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, reg := range regs {
		if !reg.Online(now) {
			continue
		}
		internInfo(reg)
		internParams(reg)
		r.index(reg)
		n++
	}
	r.metrics.online.Set(float64(len(r.byEndpoint)))
	return n, nil
}

// index adds reg to the maps, as a new record: last seen at reg.LastSeen, reachable. The
// caller holds mu.
func (r *Registry) index(reg *Registration) {
	d := newDevice(reg)
	r.byEndpoint[reg.Endpoint] = d
	r.byID[reg.ID] = d
	if reg.Addr.AddrPort.IsValid() {
		r.claimAddr(reg.Addr, d) // addrclaim.go
	}
	if reg.Identity != "" {
		r.byIdentity[reg.Identity] = d
	}
}

// unindex removes reg from the maps; the caller holds mu.
func (r *Registry) unindex(reg *Registration) {
	if cur, ok := r.byEndpoint[reg.Endpoint]; ok && cur.reg.ID == reg.ID {
		r.clearUnreachable(reg.Endpoint)
		delete(r.byEndpoint, reg.Endpoint)
	}
	delete(r.byID, reg.ID)
	if d, ok := r.byAddr.get(reg.Addr); ok && d.reg.Endpoint == reg.Endpoint {
		r.byAddr.delete(reg.Addr)
	}
	if d, ok := r.byIdentity[reg.Identity]; ok && d.reg.Endpoint == reg.Endpoint {
		delete(r.byIdentity, reg.Identity)
	}
}

// Get returns the live registration of endpoint, with LastSeen current.
func (r *Registry) Get(endpoint string) (*Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byEndpoint[endpoint]
	if !ok {
		return nil, false
	}
	reg := d.reg
	seen := d.seen.Load()
	later := seen > reg.LastSeen.UnixNano()
	since := r.unreachableSince(endpoint)
	if later || !since.IsZero() {
		cp := *reg
		if later {
			cp.LastSeen = time.Unix(0, seen).UTC()
		}
		cp.UnreachableSince = since
		return &cp, true
	}
	return reg, true
}

// Local reports whether the endpoint's device has talked to this process (registered, updated
// or sent any datagram from its address) since the registry was made: with several lwota nodes
// behind one address, that is the node the device's datagrams reach.
func (r *Registry) Local(endpoint string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byEndpoint[endpoint]
	return ok && d.seen.Load() >= r.started.UnixNano()
}

// Count is the number of live registrations.
func (r *Registry) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byEndpoint)
}

// Endpoints lists live endpoints, sorted.
func (r *Registry) Endpoints() []string {
	r.mu.RLock()
	out := make([]string, 0, len(r.byEndpoint))
	for ep := range r.byEndpoint {
		out = append(out, ep)
	}
	r.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Seen records an uplink from addr and returns the endpoint registered there, if any, and
// whether the device had been silent for longer than quiet (a queue-mode device waking up).
func (r *Registry) Seen(addr transport.Addr, quiet time.Duration) (endpoint string, woke bool) {
	now := r.now().UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.byAddr.get(addr)
	if !ok {
		return "", false
	}
	ep := d.reg.Endpoint
	r.clearDeviceUnreachable(d) // the device talks again
	last := d.seen.Swap(now)
	return ep, time.Duration(now-last) > quiet
}

// Register stores a new registration for the endpoint named in p, replacing any earlier one.
func (r *Registry) register(ctx context.Context, from transport.Peer, query []string, contentFormat int, payload []byte) (*Registration, error) {
	if err := r.admitRegister(); err != nil {
		return nil, err
	}
	p, err := parseQuery(query)
	if err != nil {
		return nil, err
	}
	if err := validEndpoint(p.endpoint, min(r.cfg.MaxEndpointLen, lwm2m.MaxEndpointLen)); err != nil {
		return nil, err
	}
	if box := r.authz.Load(); box != nil {
		if err := box.a.AuthorizeRegister(ctx, from, p.endpoint); err != nil {
			r.noteRefusal(ctx, "register", from, p.endpoint, err)
			return nil, err
		}
	}
	if p.version == "" {
		p.version = "1.0" // 1.0 clients may omit lwm2m=
	}
	if !supportedVersion(p.version) {
		return nil, fmt.Errorf("%w: lwm2m=%s (lwota speaks 1.0, 1.1 and 1.2)", ErrVersion, p.version)
	}
	ol, err := r.readObjectList(contentFormat, payload)
	if err != nil {
		return nil, err
	}
	binding := "U"
	if p.hasBinding {
		if err := validBinding(p.binding); err != nil {
			return nil, err
		}
		binding = p.binding
	}
	lifetime := r.cfg.DefaultLifetime
	if p.hasLifetime {
		if lifetime, err = r.checkLifetime(p.lifetime); err != nil {
			return nil, err
		}
	}
	now := r.now()
	reg := &Registration{
		ID:             newID(),
		Endpoint:       p.endpoint,
		Version:        p.version,
		Lifetime:       lifetime,
		Binding:        binding,
		QueueMode:      p.queue || strings.Contains(binding, "Q"),
		SMSNumber:      p.sms,
		RootPath:       ol.rootPath,
		ContentFormats: ol.formats,
		Objects:        ol.objects,
		Addr:           from.Addr,
		Identity:       from.Identity,
		RegisteredAt:   now,
		UpdatedAt:      now,
		LastSeen:       now,
	}
	internParams(reg) // shared by the fleet, not one copy per registration (compact.go)
	mu := r.writeLock(p.endpoint)
	mu.Lock()
	previous, _ := r.live(p.endpoint)
	if from.Identity == "" && previous != nil && previous.Identity != "" {
		// A plain-CoAP peer must not replace a DTLS device's registration: it would receive
		// that device's requests (a Package URI) from then on.
		mu.Unlock()
		err := fmt.Errorf("%w: %s is registered over DTLS", ErrSecuredEndpoint, p.endpoint)
		r.noteRefusal(ctx, "register", from, p.endpoint, err)
		return nil, err
	}
	if err := r.saveRegister(ctx, reg, previous); err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("register %s: store: %w", p.endpoint, err)
	}
	r.mu.Lock()
	if old := r.byEndpoint[p.endpoint]; old != nil {
		r.unindex(old.reg)
		previous = old.reg
	}
	r.index(reg)
	r.metrics.online.Set(float64(len(r.byEndpoint)))
	r.mu.Unlock()
	mu.Unlock()
	r.metrics.registers.Inc()
	r.queueInfoRead(reg)
	r.log.Debug("registered", "endpoint", reg.Endpoint, "id", reg.ID, "addr", from.Addr.String(), "lwm2m", reg.Version, "lifetime", reg.Lifetime, "binding", reg.Binding)
	if r.listener != nil {
		r.listener.Registered(reg, previous)
	}
	return reg, nil
}

// saveRegister stores reg, a new registration, with the device attributes it carries over (kept
// until the device reports other values): previous's, the live registration it replaces, or else
// the stored row's, kept by the save itself when the store is an InfoKeeper (no read first).
func (r *Registry) saveRegister(ctx context.Context, reg, previous *Registration) error {
	if previous != nil {
		carryInfo(reg, previous)
		return r.store.SaveRegistration(ctx, reg)
	}
	if k, ok := r.store.(InfoKeeper); ok {
		if err := k.SaveRegistrationKeepingInfo(ctx, reg); err != nil {
			return err
		}
		internInfo(reg)
		return nil
	}
	if stored, err := r.storedInfo(ctx, reg.Endpoint); err == nil {
		carryInfo(reg, stored)
		internInfo(reg)
	}
	return r.store.SaveRegistration(ctx, reg)
}

// storedInfo reads the device attributes of endpoint's stored registration, through InfoStore
// when the store has it.
func (r *Registry) storedInfo(ctx context.Context, endpoint string) (*Registration, error) {
	if is, ok := r.store.(InfoStore); ok {
		return is.StoredInfo(ctx, endpoint)
	}
	return r.store.GetRegistration(ctx, endpoint)
}

// readObjectList checks a Register or Update payload's content format and size, then parses it.
func (r *Registry) readObjectList(contentFormat int, payload []byte) (objectList, error) {
	if contentFormat >= 0 && contentFormat != 40 {
		return objectList{}, fmt.Errorf("%w: object list must be link format (40), got content format %d", ErrBadRequest, contentFormat)
	}
	if len(payload) > r.cfg.MaxPayload {
		return objectList{}, overLimit(limitPayload, fmt.Errorf("%w: object list is %d bytes, the limit is %d", ErrTooLarge, len(payload), r.cfg.MaxPayload))
	}
	return r.lists.parse(payload, r.cfg.MaxObjects)
}

// checkLifetime refuses a requested lifetime over MaxLifetime and raises one under MinLifetime.
func (r *Registry) checkLifetime(lt uint32) (uint32, error) {
	if r.cfg.MaxLifetime > 0 && lt > r.cfg.MaxLifetime {
		return 0, fmt.Errorf("%w: lt=%d is over the longest lifetime this server accepts, %d s", ErrBadRequest, lt, r.cfg.MaxLifetime)
	}
	if r.cfg.MinLifetime > 0 && lt < r.cfg.MinLifetime {
		return r.cfg.MinLifetime, nil
	}
	return lt, nil
}

// lookupForPeer finds registration id and checks that from may act on it: a device
// registered with a security identity may only be updated or removed under that identity. A
// refusal returns the registration too, for the record.
func (r *Registry) lookupForPeer(id string, from transport.Peer) (*Registration, error) {
	r.mu.RLock()
	var reg *Registration
	if d, ok := r.byID[id]; ok {
		reg = d.reg
	}
	r.mu.RUnlock()
	if reg == nil {
		return nil, fmt.Errorf("registration %s: %w", id, ErrNotFound)
	}
	if reg.Identity != "" && from.Identity == "" {
		return reg, fmt.Errorf("registration %s of %s: %w", id, reg.Endpoint, ErrSecuredEndpoint)
	}
	if reg.Identity != from.Identity {
		return reg, fmt.Errorf("registration %s of %s: %w: peer identity %q", id, reg.Endpoint, ErrForbidden, from.Identity)
	}
	return reg, nil
}

func (r *Registry) update(ctx context.Context, id string, from transport.Peer, query []string, contentFormat int, payload []byte) (*Registration, error) {
	cur, err := r.lookupForPeer(id, from)
	if errors.Is(err, ErrNotFound) {
		// Registered at another server of a shared store: take it over from the store.
		if ok, aerr := r.adoptStored(ctx, id); aerr != nil {
			return nil, aerr
		} else if ok {
			cur, err = r.lookupForPeer(id, from)
		}
	}
	var folded NoSecToucher
	if err == nil {
		folded, err = r.authorizeNoSecUpdate(ctx, from, cur.Endpoint)
	}
	if err != nil {
		if cur != nil {
			r.noteRefusal(ctx, "update", from, cur.Endpoint, err)
		}
		return nil, err
	}
	mu := r.writeLock(cur.Endpoint)
	mu.Lock()
	next, err := r.updateLocked(ctx, id, from, query, contentFormat, payload, folded)
	mu.Unlock()
	if err != nil {
		r.noteRefusal(ctx, "update", from, cur.Endpoint, err) // refused by the store's touch
		return nil, err
	}
	r.metrics.updates.Inc()
	if r.takeInfoFailed(next.Endpoint) {
		r.queueInfoRead(next) // the last read failed: the device is awake now
	}
	if r.listener != nil {
		r.listener.Updated(next)
	}
	return next, nil
}

// updateLocked applies an Update; the caller holds the endpoint's write lock. folded, when not
// nil, is the store that checks the NoSec peer's credential in its touch (authorizeNoSecUpdate).
func (r *Registry) updateLocked(ctx context.Context, id string, from transport.Peer, query []string, contentFormat int, payload []byte, folded NoSecToucher) (*Registration, error) {
	// Look again under the lock: the snapshot the Update builds on must be the newest.
	cur, err := r.lookupForPeer(id, from)
	if err != nil {
		return nil, err
	}
	p, err := parseQuery(query)
	if err != nil {
		return nil, err
	}
	if p.endpoint != "" || p.version != "" {
		return nil, fmt.Errorf("%w: ep and lwm2m are not Update parameters", ErrBadRequest)
	}
	next := *cur
	if p.hasLifetime {
		if next.Lifetime, err = r.checkLifetime(p.lifetime); err != nil {
			return nil, err
		}
	}
	if p.hasBinding {
		if err := validBinding(p.binding); err != nil {
			return nil, err
		}
		next.Binding = intern(p.binding)
		next.QueueMode = p.queue || strings.Contains(p.binding, "Q")
	} else if p.queue {
		next.QueueMode = true
	}
	if p.sms != "" {
		next.SMSNumber = p.sms
	}
	if len(payload) > 0 {
		ol, err := r.readObjectList(contentFormat, payload)
		if err != nil {
			return nil, err
		}
		next.Objects = ol.objects
		if ol.formats != nil {
			next.ContentFormats = ol.formats
		}
		next.RootPath = ol.rootPath
	}
	now := r.now()
	next.UpdatedAt = now
	next.LastSeen = now
	next.Addr = from.Addr // a NAT may have moved the device; the Update tells us where it is now
	// An Update that renews the lifetime and nothing else (no parameter changed, no object list)
	// is the steady state of a fleet: a store that can touches the row's times and address
	// instead of rewriting it. Either way the Update is durable before it is answered.
	timesOnly := len(payload) == 0 && next.Lifetime == cur.Lifetime && next.Binding == cur.Binding &&
		next.QueueMode == cur.QueueMode && next.SMSNumber == cur.SMSNumber
	if err := r.storeUpdate(ctx, &next, timesOnly, from, folded); err != nil {
		if errors.Is(err, ErrForbidden) {
			return nil, err // refused, not failed: the CoAP answer is 4.03
		}
		return nil, fmt.Errorf("update %s: store: %w", cur.Endpoint, err)
	}
	r.mu.Lock()
	live := r.byEndpoint[cur.Endpoint]
	if live == nil || live.reg.ID != cur.ID {
		r.mu.Unlock()
		return nil, fmt.Errorf("registration %s: %w", id, ErrNotFound) // replaced while we stored
	}
	r.reindex(live, &next)
	r.mu.Unlock()
	return &next, nil
}

// reindex makes next, an Update of d's registration (the same endpoint, location id and
// identity), d's snapshot: last seen at next.LastSeen, reachable, found at next's address. The
// record stays where it is in the maps, so an Update (the steady-state load of a fleet) moves
// only the address entry, and only when the device's address changed, instead of removing and
// adding the device in four maps and allocating a new record. The caller holds mu.
func (r *Registry) reindex(d *device, next *Registration) {
	prev := d.reg
	if prev.Addr != next.Addr {
		if cur, ok := r.byAddr.get(prev.Addr); ok && cur == d {
			r.byAddr.delete(prev.Addr)
		}
	}
	if next.Identity != "" && r.byIdentity[next.Identity] != d {
		r.byIdentity[next.Identity] = d
	}
	r.clearDeviceUnreachable(d)
	d.setReg(next)
	// The address is the updating device's from now on, even where another device registered
	// from it since; that device's registration loses it (addrclaim.go).
	if next.Addr.AddrPort.IsValid() {
		r.claimAddr(next.Addr, d)
	}
	d.seen.Store(next.LastSeen.UnixNano())
}

// storeUpdate stores an updated registration: touched when only its times and address changed
// and the store can, else whole. A touch that finds no row (the row was replaced behind this
// registry's back) falls back to the whole row. With folded (a NoSec peer whose credential check
// the store makes), the touch is folded's, which refuses a secured endpoint in the same write;
// the whole row's save checks nothing, so the Authorizer is asked before it, as on every other
// path.
func (r *Registry) storeUpdate(ctx context.Context, next *Registration, timesOnly bool, from transport.Peer, folded NoSecToucher) error {
	switch t, ok := r.store.(Toucher); {
	case timesOnly && folded != nil:
		err := folded.TouchRegistrationNoSec(ctx, next)
		if errors.Is(err, ErrSecuredEndpoint) {
			// The same refusal AuthorizeRegister gives, without the store's trail.
			return fmt.Errorf("%w: %s has a PSK credential", ErrSecuredEndpoint, next.Endpoint)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	case timesOnly && ok:
		err := t.TouchRegistration(ctx, next)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if folded != nil {
		if box := r.authz.Load(); box != nil {
			if err := box.a.AuthorizeRegister(ctx, from, next.Endpoint); err != nil {
				return err
			}
		}
	}
	return r.store.SaveRegistration(ctx, next)
}

func (r *Registry) deregister(ctx context.Context, id string, from transport.Peer) (*Registration, error) {
	cur, err := r.lookupForPeer(id, from)
	if err == nil {
		err = r.authorizeNoSec(ctx, from, cur.Endpoint)
	}
	if err != nil {
		if cur != nil {
			r.noteRefusal(ctx, "deregister", from, cur.Endpoint, err)
		}
		return nil, err
	}
	if err := r.remove(ctx, cur, false); err != nil {
		return nil, err
	}
	return cur, nil
}

// remove stores the end of reg (de-registered, or lapsed) and drops it from memory. A
// registration that is no longer the endpoint's live one is left alone.
func (r *Registry) remove(ctx context.Context, reg *Registration, expired bool) error {
	mu := r.writeLock(reg.Endpoint)
	mu.Lock()
	live, ok := r.live(reg.Endpoint)
	if !ok || live.ID != reg.ID {
		mu.Unlock()
		return nil
	}
	gone := *live // the newest snapshot: it may hold device info reported since reg was taken
	if !expired {
		gone.DeregisteredAt = r.now()
		if err := r.store.SaveRegistration(ctx, &gone); err != nil {
			mu.Unlock()
			return fmt.Errorf("deregister %s: store: %w", reg.Endpoint, err)
		}
	}
	// A lapsed registration needs no write: Online() derives offline from the stored lifetime.
	r.mu.Lock()
	r.unindex(live)
	r.metrics.online.Set(float64(len(r.byEndpoint)))
	r.mu.Unlock()
	mu.Unlock()
	r.infoMu.Lock()
	delete(r.infoFailed, reg.Endpoint)
	r.infoMu.Unlock()
	if expired {
		r.metrics.expired.Inc()
	} else {
		r.metrics.deregisters.Inc()
	}
	if r.listener != nil {
		r.listener.Deregistered(&gone, expired)
	}
	return nil
}

// RunExpiry takes registrations whose lifetime ran out offline, until ctx ends.
func (r *Registry) RunExpiry(ctx context.Context) {
	t := time.NewTicker(r.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.ExpireNow(ctx)
		}
	}
}

// ExpireNow takes every lapsed registration offline and returns how many it found.
func (r *Registry) ExpireNow(ctx context.Context) int {
	now := r.now()
	var lapsed []*Registration
	r.mu.RLock()
	for ep, d := range r.byEndpoint {
		if !now.Before(d.expires) && r.holds[ep] == 0 {
			lapsed = append(lapsed, d.reg)
		}
	}
	r.mu.RUnlock()
	for _, reg := range lapsed {
		if err := r.remove(ctx, reg, true); err != nil {
			r.log.Warn("expire registration", "endpoint", reg.Endpoint, "err", err)
		} else {
			r.log.Info("registration expired", "endpoint", reg.Endpoint, "lifetime", reg.Lifetime)
		}
	}
	return len(lapsed)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a short random location id: 10 bytes give 80 bits, so ids are not guessable.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// errorCode maps the registry's errors to the CoAP codes of Core §6.2 / Transport §6.
func errorCode(err error) transport.Code {
	switch {
	case errors.Is(err, ErrNotFound):
		return transport.NotFound
	case errors.Is(err, ErrForbidden):
		return transport.Forbidden
	case errors.Is(err, ErrVersion):
		return transport.PreconditionFailed
	case errors.Is(err, ErrTooLarge):
		return transport.RequestEntityTooLarge
	case errors.Is(err, ErrBadRequest):
		return transport.BadRequest
	case errors.Is(err, ErrUnavailable):
		return transport.ServiceUnavailable
	}
	return transport.InternalServerError
}

// ByPeer returns the live registration the peer's datagrams belong to: the one registered from
// its address under its security identity. Device-initiated requests outside /rd (Send) are
// bound to a registration this way, as the transport session is the device's only credential.
// A secured peer is also found by its identity alone: with DTLS connection ids its address may
// have moved (NAT rebinding) since it last registered or updated, while its session has not.
func (r *Registry) ByPeer(from transport.Peer) (*Registration, bool) {
	r.mu.RLock()
	d, ok := r.byAddr.get(from.Addr)
	if !ok && from.Identity != "" {
		d, ok = r.byIdentity[from.Identity]
	}
	var reg *Registration
	if ok {
		reg = d.reg
	}
	r.mu.RUnlock()
	if reg == nil || reg.Identity != from.Identity {
		return nil, false
	}
	return reg, true
}
