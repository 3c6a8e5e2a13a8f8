package fwupdate

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Devices is the LwM2M core as the driver uses it (server.Server implements it).
type Devices interface {
	// Device returns the endpoint's registration: the live one, else the last one stored.
	Device(ctx context.Context, endpoint string) (*registration.Registration, error)
	// DoNow runs a request on an awake device and never queues it (dm.ErrAsleep, dm.ErrOffline).
	DoNow(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error)
	// Push writes body to a resource in Block1 blocks read one at a time.
	Push(ctx context.Context, endpoint string, path lwm2m.Path, format lwm2m.ContentFormat, body io.ReaderAt, size int64, opts transport.UploadOptions) error
	// Hold keeps the registration from lapsing until release is called.
	Hold(endpoint string) (release func())
	// SubscribeN streams registrations and notifications until ctx ends.
	SubscribeN(ctx context.Context, n int) <-chan events.Event
	// Local reports whether the device talks to this lwota process (it registered or sent a
	// datagram here since the process started): with several nodes, the node a device talks to
	// drives its job.
	Local(endpoint string) bool
}

// Package is what the driver needs to know of an image.
type Package struct {
	ID      string
	Version string
	Size    int64
	SHA256  string
}

// Packages are the images the driver delivers, and where devices fetch them from. The firmware
// layer implements it over the image catalog and the CoAP transfer server.
type Packages interface {
	// Package describes an image, or fails with ErrImageNotFound.
	Package(ctx context.Context, imageID string) (Package, error)
	// Body reads an image's bytes for a push; reads end when ctx does.
	Body(ctx context.Context, imageID string) (io.ReaderAt, error)
	// URI is the Package URI a device fetches job j's image from with delivery (DeliveryCoAP,
	// ...), valid until until. The same job, delivery and expiry give the same URI.
	URI(ctx context.Context, j *Job, delivery string, until time.Time) (string, error)
}

// Config tunes the driver. Zero fields take DefaultConfig's values.
type Config struct {
	// Policy is the policy of jobs started without one.
	Policy Policy
	// Offered lists the pull deliveries lwota offers, most preferred first (DeliveryHTTPS,
	// DeliveryHTTP, DeliveryCoAPS, DeliveryCoAP, DeliveryCoAPTLS, DeliveryCoAPTCP). CoAPS and
	// CoAP over TLS are offered only to devices registered over DTLS or TLS and CoAP and CoAP
	// over TCP only to the others, so a secured device never downloads in the clear.
	Offered []string
	// PollInterval is how often a step that waits for the device reads /5/0/3 and /5/0/5
	// itself, in case notifications are refused or lost.
	PollInterval time.Duration
	// AwakeWindow is how long a queue-mode device listens after its last uplink.
	AwakeWindow time.Duration
	// TokenTTL is how long a job's download URI stays valid from the job's creation. Access is
	// checked per block against the job's state; the expiry bounds a leaked URI.
	TokenTTL time.Duration
	// ProgressInterval is the least time between two stores of a transfer's progress (push,
	// or pull as the transfer server reports it through Progress).
	ProgressInterval time.Duration
	// MaxPushes bounds the pushes in flight; more wait their turn.
	MaxPushes int
	// Cluster is set when several lwota nodes share the database. A job is then driven by the
	// node its device talks to (Devices.Local): Start leaves a job for a device of another node
	// in the store, and every node adopts, every AdoptEvery, the active jobs of its own devices
	// that nobody here drives. A node whose save finds the job moved on (another node drives
	// it now) lets it go.
	Cluster    bool
	AdoptEvery time.Duration
}

// DefaultConfig offers CoAP and CoAPS pulls, polls every 30 s, and allows 64 pushes at once.
func DefaultConfig() Config {
	return Config{
		Policy:           DefaultPolicy(),
		Offered:          []string{DeliveryCoAPS, DeliveryCoAP},
		PollInterval:     30 * time.Second,
		AwakeWindow:      93 * time.Second,
		TokenTTL:         7 * 24 * time.Hour,
		ProgressInterval: 5 * time.Second,
		MaxPushes:        64,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Policy.MaxAttempts <= 0 {
		c.Policy = d.Policy
	}
	if c.Offered == nil {
		c.Offered = d.Offered
	}
	if c.PollInterval <= 0 {
		c.PollInterval = d.PollInterval
	}
	if c.AwakeWindow <= 0 {
		c.AwakeWindow = d.AwakeWindow
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = d.ProgressInterval
	}
	if c.MaxPushes <= 0 {
		c.MaxPushes = d.MaxPushes
	}
	if c.AdoptEvery <= 0 {
		c.AdoptEvery = 2 * time.Second
	}
	return c
}

// Driver runs firmware update jobs: one goroutine per active job drives the device's Object 5
// through the job's states, storing every transition before acting on it. Build it with New,
// then Run it; Start, Cancel and the queries are safe for concurrent use.
type Driver struct {
	cfg   Config
	dev   Devices
	store Store
	pkgs  Packages
	audit audit.Recorder // nil: transitions are not audited
	pub   Publisher      // nil: transitions are not published (WithEvents)
	log   *slog.Logger
	m     *metrics
	now   func() time.Time

	pushes chan struct{} // semaphore of MaxPushes

	mu         sync.RWMutex    // read-locked per CoAP block served (Progress)
	ctx        context.Context // Run's; nil before Run and after it ended
	runs       map[string]*run // job ID -> run
	byEndpoint map[string]*run
	wg         sync.WaitGroup
	readyOnce  sync.Once
	ready      chan struct{} // closed once Run takes requests (it has resumed the stored jobs)
}

// New returns a driver. rec, when not nil, gets an audit entry for every transition of every
// job. A nil logger discards; a nil reg leaves the metrics unregistered; a nil now is time.Now.
func New(cfg Config, dev Devices, store Store, pkgs Packages, rec audit.Recorder, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Driver {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Driver{
		cfg: cfg, dev: dev, store: store, pkgs: pkgs, audit: rec, log: logger, m: newMetrics(reg), now: now,
		pushes:     make(chan struct{}, cfg.MaxPushes),
		runs:       make(map[string]*run),
		byEndpoint: make(map[string]*run),
		ready:      make(chan struct{}),
	}
}

// Ready is closed once Run has resumed the stored jobs and takes new ones: before that, Update
// answers ErrNotRunning. A service says it is ready only after this (Run loads the active jobs
// from the store first, which takes a while on a loaded machine).
func (d *Driver) Ready() <-chan struct{} { return d.ready }

// Run resumes every active job where it stood, then drives jobs until ctx ends. It returns
// once every job goroutine has stopped; the jobs stay stored where they were.
func (d *Driver) Run(ctx context.Context) error {
	// Subscribe before loading, so a device registering meanwhile is not missed.
	evs := d.dev.SubscribeN(ctx, 4096)
	jobs, err := d.store.ActiveJobs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: the jobs resume at the next start
		}
		return fmt.Errorf("fwupdate: resume: %w", err)
	}
	d.mu.Lock()
	d.ctx = ctx
	for _, j := range jobs {
		d.startLocked(j)
	}
	d.mu.Unlock()
	d.readyOnce.Do(func() { close(d.ready) })
	if len(jobs) > 0 {
		d.log.Info("firmware update jobs resumed", "jobs", len(jobs))
	}
	var adopt <-chan time.Time
	if d.cfg.Cluster {
		t := time.NewTicker(d.cfg.AdoptEvery)
		defer t.Stop()
		adopt = t.C
	}
loop:
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				break loop
			}
			d.dispatch(e)
		case <-adopt:
			d.adopt(ctx)
		}
	}
	d.mu.Lock()
	d.ctx = nil
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// adopt starts driving the active jobs of this node's devices that no goroutine here drives
// (cluster mode): jobs another node created, or that the device brought along when it moved.
func (d *Driver) adopt(ctx context.Context) {
	jobs, err := d.store.ActiveJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("adopt jobs", "err", err)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range jobs {
		if _, ok := d.runs[j.ID]; ok || d.ctx == nil || !d.dev.Local(j.Endpoint) {
			continue
		}
		if r := d.byEndpoint[j.Endpoint]; r != nil {
			continue // an older job of the device is still winding down here
		}
		d.log.Info("firmware update job adopted", "job", j.ID, "endpoint", j.Endpoint, "state", j.State)
		d.startLocked(j)
	}
}

// LetGo stops driving endpoint's job here, storing nothing (cluster mode): the device moved to
// another node, which adopts the job from the store and goes on from what is stored. Without a
// job here it does nothing.
func (d *Driver) LetGo(endpoint string) {
	d.mu.Lock()
	r := d.byEndpoint[endpoint]
	d.mu.Unlock()
	if r == nil {
		return
	}
	r.lost.Store(true)
	r.interrupt()
	d.log.Info("firmware update job left to the device's new node", "job", r.current().ID, "endpoint", endpoint)
}

// dispatch wakes the job of the event's endpoint: a Register, an Update or an Object 5
// notification is the moment to look at the device again.
func (d *Driver) dispatch(e events.Event) {
	switch e.Type {
	case events.TypeRegistered, events.TypeUpdated, events.TypeNotification:
	default:
		return
	}
	d.mu.Lock()
	r := d.byEndpoint[e.Endpoint]
	d.mu.Unlock()
	switch {
	case r == nil:
	case e.Type == events.TypeRegistered:
		r.interrupt()
	default:
		r.wake()
	}
}

// startLocked starts j's goroutine; d.mu is held and d.ctx set.
func (d *Driver) startLocked(j *Job) {
	if _, ok := d.runs[j.ID]; ok {
		return
	}
	r := newRun(d, j)
	d.runs[j.ID] = r
	d.byEndpoint[j.Endpoint] = r
	d.m.active.Inc()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		r.loop()
		d.mu.Lock()
		delete(d.runs, j.ID)
		if d.byEndpoint[j.Endpoint] == r {
			delete(d.byEndpoint, j.Endpoint)
		}
		d.mu.Unlock()
		d.m.active.Dec()
	}()
}

// Start creates a job that updates endpoint to req's image and starts driving it. It fails with
// ErrInvalidRequest, ErrImageNotFound, ErrDeviceNotFound, ErrActiveJob (the device already has
// an active job) or ErrNotRunning.
func (d *Driver) Start(ctx context.Context, endpoint string, req StartRequest) (*Job, error) {
	method := req.Method
	if method == "" {
		method = MethodAuto
	}
	if method != MethodPull && method != MethodPush && method != MethodAuto {
		return nil, fmt.Errorf("%w: method %q: want pull, push or auto", ErrInvalidRequest, req.Method)
	}
	policy := d.cfg.Policy
	if req.Policy != nil {
		policy = *req.Policy
	}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if _, err := d.dev.Device(ctx, endpoint); err != nil {
		if errors.Is(err, registration.ErrNotFound) {
			return nil, fmt.Errorf("update %s: %w", endpoint, ErrDeviceNotFound)
		}
		return nil, fmt.Errorf("update %s: %w", endpoint, err)
	}
	pkg, err := d.pkgs.Package(ctx, req.ImageID)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", endpoint, err)
	}
	d.mu.Lock()
	running := d.ctx != nil
	d.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("update %s: %w", endpoint, ErrNotRunning)
	}
	j, created := NewJob(newJobID(), endpoint, ImageRef{ID: pkg.ID, Version: pkg.Version, Size: pkg.Size},
		method, policy, req.CampaignID, d.now())
	if err := d.store.CreateJob(ctx, j, created); err != nil {
		return nil, fmt.Errorf("update %s: %w", endpoint, err)
	}
	d.m.transitions.WithLabelValues(string(StateQueued)).Inc()
	d.record(ctx, audit.ActorSystem, j, created)
	d.log.Info("firmware update queued", "job", j.ID, "endpoint", endpoint, "image", pkg.ID, "version", pkg.Version, "method", method)
	d.mu.Lock()
	if d.ctx != nil {
		if !d.cfg.Cluster || d.dev.Local(endpoint) {
			d.startLocked(j.Clone())
		}
	}
	d.mu.Unlock()
	return j, nil
}

// Job returns a job, or ErrJobNotFound. A pull in progress shows the bytes served so far.
func (d *Driver) Job(ctx context.Context, id string) (*Job, error) {
	j, err := d.store.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	d.withServed(j)
	return j, nil
}

// Jobs returns the endpoint's jobs, newest first, at most limit (0: all).
func (d *Driver) Jobs(ctx context.Context, endpoint string, limit int) ([]*Job, error) {
	jobs, err := d.store.JobsFor(ctx, endpoint, limit)
	for _, j := range jobs {
		d.withServed(j)
	}
	return jobs, err
}

// CampaignJobs returns the jobs of a campaign changed at or after since, oldest change first.
func (d *Driver) CampaignJobs(ctx context.Context, campaignID string, since time.Time) ([]*Job, error) {
	return d.store.CampaignJobs(ctx, campaignID, since)
}

// History returns a job's transitions in order.
func (d *Driver) History(ctx context.Context, id string) ([]Transition, error) {
	return d.store.History(ctx, id)
}

// Cancel ends a job as cancelled and asks the device to drop what it downloaded. It fails with
// ErrJobNotFound, or ErrInvalidTransition when the job already ended.
func (d *Driver) Cancel(ctx context.Context, id, reason string) (*Job, error) {
	if reason == "" {
		reason = "cancelled by operator"
	}
	d.mu.Lock()
	r := d.runs[id]
	d.mu.Unlock()
	if r != nil {
		return r.cancelJob(ctx, reason)
	}
	// Not driven here (Run not started, or the job ended): move the stored job if it may.
	j, err := d.store.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if !j.Active() {
		return nil, fmt.Errorf("%w: job %s already %s", ErrInvalidTransition, id, j.State)
	}
	tr, err := j.Apply(StateCancelled, d.now(), reason)
	if err != nil {
		return nil, err
	}
	if err := d.store.SaveTransition(ctx, j, tr); err != nil {
		return nil, err
	}
	d.m.transitions.WithLabelValues(string(StateCancelled)).Inc()
	d.record(ctx, audit.ActorSystem, j, tr)
	return j, nil
}

// MayDownload decides whether a download of job j's image may be served to from, given the
// registration reg of j's device: the job must be delivering (or waiting to resume) and from
// must be its device — the same DTLS identity, or for plain CoAP the IP address it registered
// from. It fails with ErrForbidden.
func MayDownload(j *Job, reg *registration.Registration, from transport.Peer) error {
	if j.State != StateDelivering && j.State != StateWaiting {
		return fmt.Errorf("%w: job %s is %s", ErrForbidden, j.ID, j.State)
	}
	if reg == nil || reg.Endpoint != j.Endpoint || !samePeer(reg, from) {
		return fmt.Errorf("%w: job %s belongs to %s, asked from %s", ErrForbidden, j.ID, j.Endpoint, from.Addr)
	}
	return nil
}

// MayFetchHTTP is MayDownload for an HTTP(S) download, where only the client's IP address is
// known: it must be the address the device registered from.
func MayFetchHTTP(j *Job, reg *registration.Registration, ip netip.Addr) error {
	if j.State != StateDelivering && j.State != StateWaiting {
		return fmt.Errorf("%w: job %s is %s", ErrForbidden, j.ID, j.State)
	}
	if reg == nil || reg.Endpoint != j.Endpoint || reg.Addr.AddrPort.Addr().Unmap() != ip.Unmap() {
		return fmt.Errorf("%w: job %s belongs to %s, asked from %s", ErrForbidden, j.ID, j.Endpoint, ip)
	}
	return nil
}

// samePeer: over DTLS (and TLS with a client certificate) the identity proves who asks; plain
// CoAP and TCP have only the address, and a device may open a new socket (port) or connection
// for its download, over another transport than it registered with.
func samePeer(reg *registration.Registration, from transport.Peer) bool {
	if reg.Identity != "" || from.Identity != "" || reg.Addr.Network == transport.DTLS || from.Addr.Network == transport.DTLS {
		return from.Addr.Network.Secure() && reg.Identity != "" && from.Identity == reg.Identity
	}
	return reg.Addr.AddrPort.Addr().Unmap() == from.Addr.AddrPort.Addr().Unmap()
}

// Validate refuses a policy no job could run under.
func (p Policy) Validate() error {
	switch {
	case p.MaxAttempts < 1 || p.MaxAttempts > 100:
		return fmt.Errorf("policy: max attempts %d: want 1 to 100", p.MaxAttempts)
	case p.BackoffBase < 0 || p.BackoffMax < 0 || p.StepSlack < 0:
		return errors.New("policy: durations may not be negative")
	case p.MinLinkRate < 0:
		return fmt.Errorf("policy: min link rate %d bytes/s is negative", p.MinLinkRate)
	case p.BlockSize != 0 && (p.BlockSize < 16 || p.BlockSize > 1024 || p.BlockSize&(p.BlockSize-1) != 0):
		return fmt.Errorf("policy: block size %d: want a power of two from 16 to 1024", p.BlockSize)
	}
	return nil
}

// offeredFor filters the configured pull deliveries for one device: the secure CoAP ones
// (CoAPS, CoAP over TLS) only to a device registered over DTLS or TLS, the plain ones only to
// the others. Deliveries over the kind of transport the device registered with (datagrams or a
// stream) come first, in their configured order: a device that registered over TCP is likely
// behind a network that passes TCP, and one that registered over UDP to have a UDP stack.
func (d *Driver) offeredFor(reg *registration.Registration) []string {
	secure := reg.Addr.Network.Secure()
	stream := reg.Addr.Network == transport.TCP || reg.Addr.Network == transport.TLS
	var same, other []string
	for _, o := range d.cfg.Offered {
		switch o {
		case DeliveryCoAPS, DeliveryCoAPTLS:
			if !secure {
				continue
			}
		case DeliveryCoAP, DeliveryCoAPTCP:
			if secure {
				continue
			}
		}
		if isStream := o == DeliveryCoAPTCP || o == DeliveryCoAPTLS; isStream == stream {
			same = append(same, o)
		} else {
			other = append(other, o)
		}
	}
	return append(same, other...)
}

var jobIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newJobID returns 16 characters (80 random bits): short enough for a download token.
func newJobID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return jobIDEncoding.EncodeToString(b[:])
}

// record publishes a stored transition of a job on the event stream and writes it to the audit
// log as actor's: the device's ("device:<ep>") when its own report caused it, else the system's.
// The operator's call that caused one (start, cancel) is audited by the API as well, with the
// operator's token.
func (d *Driver) record(ctx context.Context, actor string, j *Job, tr Transition) {
	d.publish(j, tr)
	if d.audit == nil {
		return
	}
	detail := map[string]string{"endpoint": j.Endpoint, "from": string(tr.From), "to": string(tr.To),
		"attempt": strconv.Itoa(tr.Attempt), "image": j.ImageID}
	if tr.Reason != "" {
		detail["reason"] = tr.Reason
	}
	if j.CampaignID != "" {
		detail["campaign"] = j.CampaignID
	}
	err := d.audit.Record(ctx, audit.Entry{At: tr.At, Actor: actor, Action: "update." + string(tr.To),
		Target: "update:" + j.ID, Outcome: audit.OutcomeSuccess, Detail: detail})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("audit job transition", "job", j.ID, "err", err)
	}
}
