package dm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Sender is the transport's client side.
type Sender interface {
	Do(ctx context.Context, to transport.Addr, req *transport.Message) (*transport.Message, error)
	Upload(ctx context.Context, to transport.Addr, req *transport.Message, body io.ReaderAt, size int64, opts transport.UploadOptions) (*transport.Message, error)
	NewToken() []byte
}

// Reacher is a Sender that knows whether a device can be sent to now (the server's, for
// devices registered over TCP or TLS, whose connection may be closed).
type Reacher interface {
	Reachable(to transport.Addr) bool
}

// SessionBinder is a Sender that can tell whose secured session holds an address.
type SessionBinder interface {
	// SessionOf reports whether a request to to would go through a session of identity, or
	// through no session at all (then the send itself reports it). False means another
	// identity's session holds the address now.
	SessionOf(to transport.Addr, identity string) bool
}

// Devices finds live registrations.
type Devices interface {
	Get(endpoint string) (*registration.Registration, bool)
}

// Observations keeps the server's observations; the observe package implements it.
type Observations interface {
	// Begin starts routing notifications with token to the observation before the request goes out
	// (a device may notify before its first answer arrives); the returned func undoes it.
	Begin(endpoint string, path lwm2m.Path, token []byte, format lwm2m.ContentFormat) (abort func())
	// Established stores the observation once the device accepted it.
	// paths are an Observe-Composite's (path is then the root); nil for a plain Observe.
	Established(ctx context.Context, endpoint string, path lwm2m.Path, paths []lwm2m.Path, token []byte, format lwm2m.ContentFormat, recs []lwm2m.Record) error
	// Token returns the token of the observation on path, if the server holds one.
	Token(endpoint string, path lwm2m.Path) ([]byte, bool)
	// Cancelled forgets the observation on path.
	Cancelled(ctx context.Context, endpoint string, path lwm2m.Path) error
}

// ValueSink hears the values devices report in answers (the registry keeps /3/0/3 from it).
type ValueSink interface {
	Values(ctx context.Context, endpoint string, recs []lwm2m.Record)
}

// Publisher publishes server events.
type Publisher interface {
	Publish(e events.Event)
}

// Client sends device-management requests. It is safe for concurrent use.
type Client struct {
	sender  Sender
	devices Devices
	obs     Observations
	queue   QueueStore
	model   codec.Resolver
	values  ValueSink
	pub     Publisher
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu     sync.Mutex
	queued map[string]int // endpoint -> requests waiting; absent means not yet counted since start
	// counted: LoadQueued counted every endpoint, so an absent one has none waiting (and
	// endpoints whose queue empties are dropped from queued, which then holds only non-zero
	// counts).
	counted  bool
	flushing map[string]bool // endpoints whose queue is being sent
	wg       sync.WaitGroup
}

// New returns a client. values, pub, m and now may be nil.
func New(sender Sender, devices Devices, obs Observations, queue QueueStore, model codec.Resolver, values ValueSink, pub Publisher, cfg Config, logger *slog.Logger, m *Metrics, now func() time.Time) *Client {
	if now == nil {
		now = time.Now
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		sender: sender, devices: devices, obs: obs, queue: queue, model: model, values: values, pub: pub,
		cfg: cfg, log: logger, metrics: m, now: now,
		queued:   make(map[string]int),
		flushing: make(map[string]bool),
	}
}

// Do runs req on the device now, or, when the device is in queue mode and asleep, stores it and
// returns it as pending; it is sent when the device next talks to the server.
func (c *Client) Do(ctx context.Context, endpoint string, req Request) (*Result, *Pending, error) {
	if err := validate(req); err != nil {
		return nil, nil, err
	}
	reg, err := c.awake(endpoint)
	if errors.Is(err, ErrAsleep) {
		p, err := c.enqueue(ctx, endpoint, req)
		return nil, p, err
	}
	if err != nil {
		return nil, nil, err
	}
	res, err := c.send(ctx, reg, req)
	if errors.Is(err, ErrAsleep) {
		// The device's connection (TCP, TLS) went away before anything was sent, or another
		// device took its address and answered instead: wait for the device to talk again.
		p, err := c.enqueue(ctx, endpoint, req)
		return nil, p, err
	}
	return res, nil, err
}

// DoNow runs req on the device now and never queues it: a queue-mode device that is asleep
// fails with ErrAsleep. Callers that wait for the device's wake-up themselves (the firmware
// update driver) use it, so a request is never sent twice.
func (c *Client) DoNow(ctx context.Context, endpoint string, req Request) (*Result, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	reg, err := c.awake(endpoint)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, reg, req)
}

// Push writes the size bytes of body to path (a resource, such as /5/0/0) with content format
// format, in Block1 blocks read from body one at a time (RFC 7959). Like DoNow it never queues.
// The upload is bounded by ctx only: a firmware image over a slow link takes as long as it takes.
func (c *Client) Push(ctx context.Context, endpoint string, path lwm2m.Path, format lwm2m.ContentFormat, body io.ReaderAt, size int64, opts transport.UploadOptions) error {
	if path.Len() != 3 {
		return fmt.Errorf("%w: push to %s: a resource path is needed", ErrInvalid, path)
	}
	reg, err := c.awake(endpoint)
	if err != nil {
		return err
	}
	msg := transport.NewMessage(transport.PUT)
	msg.Path = uriPath(reg, path)
	msg.ContentFormat = int(format)
	msg.Token = c.sender.NewToken()
	req := Request{Op: OpWrite, Path: path}
	resp, err := c.sender.Upload(ctx, reg.Addr, msg, body, size, opts)
	if err != nil {
		return c.transportError(endpoint, req, err)
	}
	if resp.Code != transport.Changed && resp.Code != transport.Created {
		return fmt.Errorf("push %s to %s: %w", path, endpoint, &DeviceError{Code: resp.Code.String(), Msg: diagnosticText(resp.Payload)})
	}
	return nil
}

// awake returns the live registration of a device that can be talked to now.
func (c *Client) awake(endpoint string) (*registration.Registration, error) {
	reg, ok := c.devices.Get(endpoint)
	if !ok {
		return nil, fmt.Errorf("%s: %w", endpoint, registration.ErrNotFound)
	}
	now := c.now()
	if !reg.Online(now) {
		return nil, fmt.Errorf("%s: %w", endpoint, ErrOffline)
	}
	if reg.QueueMode && now.Sub(reg.LastSeen) > c.cfg.AwakeWindow {
		return nil, fmt.Errorf("%s: %w", endpoint, ErrAsleep)
	}
	// A registration whose address another device registered from since (the device restarted
	// and has not registered from its new socket yet) must not be sent to: the other device
	// would get the request. It is handled as asleep until its next Register or Update.
	if !reg.HasAddr() {
		return nil, fmt.Errorf("%s: its last address is now another device's; waiting for its next Register or Update: %w", endpoint, ErrAsleep)
	}
	// Over DTLS the session at the device's address must be the device's own (its identity): a
	// device that restarted may have left that address to another device's new session
	// before either registered again.
	if b, ok := c.sender.(SessionBinder); ok && reg.Identity != "" && !b.SessionOf(reg.Addr, reg.Identity) {
		return nil, fmt.Errorf("%s: the session at %s is not its own; waiting for its next Register or Update: %w", endpoint, reg.Addr, ErrAsleep)
	}
	// Over TCP a device is reachable only while its connection is open; without one it is
	// handled as a sleeping queue-mode device: requests wait until it connects again.
	if r, ok := c.sender.(Reacher); ok && !r.Reachable(reg.Addr) {
		return nil, fmt.Errorf("%s: no open connection over %s: %w", endpoint, reg.Addr.Network, ErrAsleep)
	}
	return reg, nil
}

// Pending returns a queued request by id.
func (c *Client) Pending(ctx context.Context, id string) (*Pending, error) {
	return c.queue.GetPending(ctx, id)
}

func (c *Client) enqueue(ctx context.Context, endpoint string, req Request) (*Pending, error) {
	waiting, err := c.queue.PendingFor(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("queue for %s: %w", endpoint, err)
	}
	if len(waiting) >= c.cfg.MaxQueued {
		c.metrics.queueFull.Inc()
		return nil, fmt.Errorf("%s has %d requests waiting: %w", endpoint, len(waiting), ErrQueueFull)
	}
	now := c.now()
	p := &Pending{ID: newRequestID(), Endpoint: endpoint, Request: req, State: PendingQueued, CreatedAt: now, UpdatedAt: now}
	if err := c.queue.SavePending(ctx, p); err != nil {
		return nil, fmt.Errorf("queue for %s: %w", endpoint, err)
	}
	c.mu.Lock()
	c.queued[endpoint] = len(waiting) + 1
	c.mu.Unlock()
	c.log.Debug("request queued", "endpoint", endpoint, "id", p.ID, "op", req.Op, "path", req.Path.String())
	return p, nil
}

// LoadQueued counts the queued requests of every endpoint when Config.SoleQueue is set and the
// store can (QueueCounter), so that Woke never reads the store for a device that has none. Call
// it once before devices talk to the server; without SoleQueue it does nothing.
func (c *Client) LoadQueued(ctx context.Context) error {
	qc, ok := c.queue.(QueueCounter)
	if !c.cfg.SoleQueue || !ok {
		return nil
	}
	counts, err := qc.QueuedCounts(ctx)
	if err != nil {
		return fmt.Errorf("dm: count queued requests: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ep, n := range counts {
		if n > 0 {
			c.queued[ep] = n
		}
	}
	c.counted = true
	return nil
}

// Woke tells the client that endpoint just talked to the server: its queue, if any, is sent now.
// It returns at once; the sending happens on its own goroutine, bounded to one per endpoint.
func (c *Client) Woke(ctx context.Context, endpoint string) {
	c.mu.Lock()
	n, counted := c.queued[endpoint]
	counted = counted || c.counted
	if (counted && n == 0) || c.flushing[endpoint] {
		c.mu.Unlock()
		return
	}
	c.flushing[endpoint] = true
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		c.flush(ctx, endpoint)
	}()
}

// Wait blocks until every queue flush in progress has ended (for shutdown).
func (c *Client) Wait() { c.wg.Wait() }

func (c *Client) flush(ctx context.Context, endpoint string) {
	defer func() {
		c.mu.Lock()
		delete(c.flushing, endpoint)
		c.mu.Unlock()
	}()
	waiting, err := c.queue.PendingFor(ctx, endpoint)
	if err != nil {
		c.log.Warn("read request queue", "endpoint", endpoint, "err", err)
		return
	}
	c.setQueued(endpoint, len(waiting))
	for i, p := range waiting {
		reg, ok := c.devices.Get(endpoint)
		if !ok || !reg.Online(c.now()) {
			return
		}
		res, err := c.send(ctx, reg, p.Request)
		if (errors.Is(err, ErrTimeout) || errors.Is(err, ErrAsleep)) && ctx.Err() == nil {
			// Asleep again (or its connection gone) before the queue emptied: the rest waits
			// for the next wake-up. Only a request that went out unanswered counts as an attempt.
			p.Error = err.Error()
			p.UpdatedAt = c.now()
			if errors.Is(err, ErrTimeout) {
				p.Attempts++
			}
			if p.Attempts >= c.cfg.MaxQueueAttempts {
				p.State = PendingFailed
			}
			if serr := c.queue.SavePending(ctx, p); serr != nil {
				c.log.Warn("save queued request", "id", p.ID, "err", serr)
			}
			c.setQueued(endpoint, len(waiting)-i)
			return
		}
		if ctx.Err() != nil {
			return // shutting down: the request stays queued and is sent after the restart
		}
		p.UpdatedAt = c.now()
		p.Result = res
		if err != nil {
			p.State, p.Error = PendingFailed, err.Error()
		} else {
			p.State, p.Error = PendingDone, ""
		}
		if serr := c.queue.SavePending(ctx, p); serr != nil {
			c.log.Warn("save queued request", "id", p.ID, "err", serr)
			return
		}
		c.setQueued(endpoint, len(waiting)-i-1)
		if c.pub != nil {
			c.pub.Publish(events.Event{Type: events.TypeRequestDone, Endpoint: endpoint, Time: p.UpdatedAt, Data: p})
		}
	}
}

func (c *Client) setQueued(endpoint string, n int) {
	c.mu.Lock()
	if n == 0 && c.counted {
		delete(c.queued, endpoint) // absent is none once every endpoint was counted
	} else {
		c.queued[endpoint] = n
	}
	c.mu.Unlock()
}

// send performs req on reg now.
func (c *Client) send(ctx context.Context, reg *registration.Registration, req Request) (*Result, error) {
	msg, format, err := buildMessage(reg, req, c.model)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ExchangeTimeout)
	defer cancel()

	var abort func()
	switch req.Op {
	case OpObserve, OpObserveComposite:
		msg.Token = c.sender.NewToken()
		abort = c.obs.Begin(reg.Endpoint, req.Path, msg.Token, format)
	case OpCancelObserve, OpCancelObserveComposite:
		tok, ok := c.obs.Token(reg.Endpoint, req.Path)
		if !ok {
			return nil, fmt.Errorf("%w: no observation of %s on %s", ErrInvalid, req.Path, reg.Endpoint)
		}
		msg.Token = tok
	default:
		msg.Token = c.sender.NewToken()
	}

	resp, err := c.sender.Do(ctx, reg.Addr, msg)
	if err != nil {
		if abort != nil {
			abort()
		}
		return nil, c.transportError(reg.Endpoint, req, err)
	}
	if c.lostAddr(reg) {
		if abort != nil {
			abort()
		}
		return nil, fmt.Errorf("%s %s on %s: answered from %s, which another device registered from while the request was out: %w", req.Op, req.Path, reg.Endpoint, reg.Addr, ErrAsleep)
	}
	res, err := decodeResult(req, format, resp, c.model)
	if err != nil {
		if abort != nil {
			abort()
		}
		return res, fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, reg.Endpoint, err)
	}
	switch req.Op {
	case OpObserve, OpObserveComposite:
		if resp.Observe < 0 {
			// The device answered as a plain read: it will not notify (Core §6.4.1 lets it refuse).
			abort()
		} else if err := c.obs.Established(ctx, reg.Endpoint, req.Path, req.Paths, msg.Token, res.Format, res.Records); err != nil {
			abort()
			return res, fmt.Errorf("observe %s on %s: %w", req.Path, reg.Endpoint, err)
		}
	case OpCancelObserve, OpCancelObserveComposite:
		if err := c.obs.Cancelled(ctx, reg.Endpoint, req.Path); err != nil {
			return res, fmt.Errorf("cancel observe %s on %s: %w", req.Path, reg.Endpoint, err)
		}
	}
	if c.values != nil && len(res.Records) > 0 {
		c.values.Values(ctx, reg.Endpoint, res.Records)
	}
	return res, nil
}

// lostAddr reports whether reg's registration lost its address to another device (one that
// registered from it) since reg was taken. awake stops requests from being sent to such an
// address; a request already out is sent again (CoAP retransmissions, for up to a minute and a
// half), and the device that has the address now gets it and answers. Over NoSec nothing
// else tells its answer from reg's device's, so it must not be taken as reg's device's: that
// device is away until its next Register or Update, as awake would have found. A registration
// that moved to another address meanwhile is not such a case: a device answers an Execute of
// Reboot (or of /5/0/2) and registers from its new socket at once, and its Register may be
// handled before its answer reaches here; taken for a lost answer, the Execute was queued and
// sent again.
func (c *Client) lostAddr(reg *registration.Registration) bool {
	live, ok := c.devices.Get(reg.Endpoint)
	return ok && !live.HasAddr()
}

func (c *Client) transportError(endpoint string, req Request, err error) error {
	switch {
	case errors.Is(err, transport.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, endpoint, ErrTimeout)
	case errors.Is(err, transport.ErrNotConnected):
		// Nothing was sent: the device is handled as one asleep until it connects again.
		return fmt.Errorf("%s %s on %s: no connection: %w", req.Op, req.Path, endpoint, ErrAsleep)
	case errors.Is(err, transport.ErrClosed):
		return fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, endpoint, ErrUnavailable)
	case errors.Is(err, transport.ErrReset):
		return fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, endpoint, &DeviceError{Code: "RST", Msg: "device reset the request"})
	case errors.Is(err, transport.ErrBadOption):
		// The answer is not trusted as a success (RFC 7252 §5.4.1): report it as the device's error.
		return fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, endpoint, &DeviceError{Code: "bad-option",
			Msg: "the answer carried a critical option lwota does not recognise"})
	}
	return fmt.Errorf("%s %s on %s: %w", req.Op, req.Path, endpoint, err)
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
