package observe

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// Listener is the transport's routing of notifications by token.
type Listener interface {
	Listen(token []byte, fn func(from transport.Peer, msg *transport.Message)) (stop func())
}

// Requester sends device-management requests (the dm client); used to re-establish observations.
type Requester interface {
	Do(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, *dm.Pending, error)
}

// Publisher publishes server events.
type Publisher interface {
	Publish(e events.Event)
}

// ValueSink hears notified values (the registry keeps /3/0/3 from it).
type ValueSink interface {
	Values(ctx context.Context, endpoint string, recs []lwm2m.Record)
}

type key struct {
	endpoint string
	path     lwm2m.Path
}

type live struct {
	token  []byte
	format lwm2m.ContentFormat
	stop   func()
}

// Manager holds live observations. It implements dm.Observations.
type Manager struct {
	store    Store
	listener Listener
	model    codec.Resolver
	pub      Publisher
	values   ValueSink
	log      *slog.Logger
	now      func() time.Time
	// requester is set after construction: the dm client needs the manager and the manager the client.
	requester Requester

	mu   sync.Mutex
	byEP map[key]*live
	// perEndpoint counts live observations per endpoint, so a Register of a device the server
	// observes nothing on (the common case) costs no store query.
	perEndpoint map[string]int

	wg sync.WaitGroup
}

// New returns a manager. pub, values and now may be nil.
func New(store Store, listener Listener, model codec.Resolver, pub Publisher, values ValueSink, logger *slog.Logger, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, listener: listener, model: model, pub: pub, values: values, log: logger, now: now, byEP: make(map[key]*live), perEndpoint: make(map[string]int)}
}

// SetRequester wires the dm client used to re-establish observations.
func (m *Manager) SetRequester(r Requester) { m.requester = r }

// Load routes notifications of every stored observation again after a restart.
func (m *Manager) Load(ctx context.Context) (int, error) {
	obs, err := m.store.Observations(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("load observations: %w", err)
	}
	for _, o := range obs {
		m.route(o.Endpoint, o.Path, o.Token, o.Format)
	}
	return len(obs), nil
}

func (m *Manager) route(endpoint string, path lwm2m.Path, token []byte, format lwm2m.ContentFormat) func() {
	k := key{endpoint, path}
	l := &live{token: token, format: format}
	l.stop = m.listener.Listen(token, func(from transport.Peer, msg *transport.Message) {
		m.notified(k, l, msg)
	})
	m.mu.Lock()
	old := m.byEP[k]
	m.byEP[k] = l
	if old == nil {
		m.perEndpoint[endpoint]++
	}
	m.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return func() {
		m.mu.Lock()
		if m.byEP[k] == l {
			m.forget(k)
		}
		m.mu.Unlock()
		l.stop()
	}
}

// forget drops the observation at k; the caller holds mu.
func (m *Manager) forget(k key) {
	if _, ok := m.byEP[k]; !ok {
		return
	}
	delete(m.byEP, k)
	if m.perEndpoint[k.endpoint]--; m.perEndpoint[k.endpoint] <= 0 {
		delete(m.perEndpoint, k.endpoint)
	}
}

// Begin implements dm.Observations.
func (m *Manager) Begin(endpoint string, path lwm2m.Path, token []byte, format lwm2m.ContentFormat) func() {
	return m.route(endpoint, path, token, format)
}

// Established implements dm.Observations: the observation is stored, with its first value.
func (m *Manager) Established(ctx context.Context, endpoint string, path lwm2m.Path, paths []lwm2m.Path, token []byte, format lwm2m.ContentFormat, recs []lwm2m.Record) error {
	now := m.now()
	if err := m.store.SaveObservation(ctx, &Observation{Endpoint: endpoint, Path: path, Paths: paths, Token: token, Format: format, CreatedAt: now}); err != nil {
		return fmt.Errorf("store observation: %w", err)
	}
	m.mu.Lock()
	if l := m.byEP[key{endpoint, path}]; l != nil && string(l.token) == string(token) {
		l.format = format
	}
	m.mu.Unlock()
	return m.saveLatest(ctx, endpoint, path, recs, now)
}

// Token implements dm.Observations.
func (m *Manager) Token(endpoint string, path lwm2m.Path) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.byEP[key{endpoint, path}]
	if !ok {
		return nil, false
	}
	return l.token, true
}

// Cancelled implements dm.Observations.
func (m *Manager) Cancelled(ctx context.Context, endpoint string, path lwm2m.Path) error {
	m.mu.Lock()
	l := m.byEP[key{endpoint, path}]
	m.forget(key{endpoint, path})
	m.mu.Unlock()
	if l != nil {
		l.stop()
	}
	if err := m.store.DeleteObservation(ctx, endpoint, path); err != nil {
		return fmt.Errorf("forget observation: %w", err)
	}
	return nil
}

// Observations lists what the server observes on endpoint.
func (m *Manager) Observations(ctx context.Context, endpoint string) ([]*Observation, error) {
	return m.store.Observations(ctx, endpoint)
}

// Latest lists the newest notified values of endpoint.
func (m *Manager) Latest(ctx context.Context, endpoint string) ([]*Latest, error) {
	return m.store.LatestFor(ctx, endpoint)
}

func (m *Manager) notified(k key, l *live, msg *transport.Message) {
	if !msg.Code.IsSuccess() {
		// An error notification ends the observation on the device's side (RFC 7641 §3.2).
		m.log.Info("observation ended by device", "endpoint", k.endpoint, "path", k.path.String(), "code", msg.Code.String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Cancelled(ctx, k.endpoint, k.path)
		return
	}
	m.mu.Lock()
	format := l.format
	m.mu.Unlock()
	if msg.ContentFormat >= 0 {
		format = lwm2m.ContentFormat(msg.ContentFormat)
	}
	recs, err := codec.Decode(format, k.path, msg.Payload, m.model)
	if err != nil {
		m.log.Warn("undecodable notification", "endpoint", k.endpoint, "path", k.path.String(), "format", format.Name(), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.saveLatest(ctx, k.endpoint, k.path, recs, m.now()); err != nil {
		m.log.Warn("store notification", "endpoint", k.endpoint, "err", err)
	}
}

func (m *Manager) saveLatest(ctx context.Context, endpoint string, path lwm2m.Path, recs []lwm2m.Record, now time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	l := &Latest{Endpoint: endpoint, Path: path, Records: recs, Time: now}
	if err := m.store.SaveLatest(ctx, l); err != nil {
		return fmt.Errorf("store latest value: %w", err)
	}
	if m.values != nil {
		m.values.Values(ctx, endpoint, recs)
	}
	if m.pub != nil {
		m.pub.Publish(events.Event{Type: events.TypeNotification, Endpoint: endpoint, Time: now, Data: l})
	}
	return nil
}

// Reestablish asks a device that registered anew to observe again what the server observed:
// a rebooted device has forgotten its observers. It returns at once and works in the background.
func (m *Manager) Reestablish(ctx context.Context, endpoint string) {
	m.mu.Lock()
	n := m.perEndpoint[endpoint]
	m.mu.Unlock()
	if m.requester == nil || n == 0 {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		obs, err := m.store.Observations(ctx, endpoint)
		if err != nil {
			m.log.Warn("load observations", "endpoint", endpoint, "err", err)
			return
		}
		for _, o := range obs {
			f := o.Format
			req := dm.Request{Op: dm.OpObserve, Path: o.Path}
			if len(o.Paths) > 0 {
				req = dm.Request{Op: dm.OpObserveComposite, Path: o.Path, Paths: o.Paths}
			}
			if f != 0 {
				req.Format = &f
			}
			if _, _, err := m.requester.Do(ctx, endpoint, req); err != nil {
				m.log.Info("re-establish observation", "endpoint", endpoint, "path", o.Path.String(), "err", err)
			}
		}
	}()
}

// Wait blocks until background re-establishment has ended (for shutdown).
func (m *Manager) Wait() { m.wg.Wait() }
