package send

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// Path is where devices Send (Core 1.1 §6.4.4: "/dp", the data push resource).
const Path = "/dp"

// Registrations finds the registration a request's peer belongs to (registration.Registry).
type Registrations interface {
	ByPeer(from transport.Peer) (*registration.Registration, bool)
}

// Store keeps the latest values (observe.Store has it).
type Store interface {
	SaveLatest(ctx context.Context, l *observe.Latest) error
}

// ValueSink hears reported values (the server keeps the Object 3 identity from them).
type ValueSink interface {
	Values(ctx context.Context, endpoint string, recs []lwm2m.Record)
}

// Publisher publishes server events.
type Publisher interface {
	Publish(e events.Event)
}

// Config bounds what one Send may carry.
type Config struct {
	// MaxRecords is the largest number of records one Send may hold (4.13 above it); 0: no
	// limit but the transport's on the payload size.
	MaxRecords int
	// StoreTimeout bounds storing one Send's values before it is answered; 0: 10 s.
	StoreTimeout time.Duration
}

// DefaultConfig returns the limits lwota ships with.
func DefaultConfig() Config {
	return Config{MaxRecords: 1024, StoreTimeout: 10 * time.Second}
}

// Handler answers POST /dp. Build it with New.
type Handler struct {
	regs   Registrations
	store  Store
	model  codec.Resolver
	values ValueSink
	pub    Publisher
	cfg    Config
	log    *slog.Logger
	m      *metrics
	now    func() time.Time
}

// New returns a handler. model, values and pub may be nil; logger may be nil; reg may be nil;
// now may be nil (time.Now).
func New(regs Registrations, store Store, model codec.Resolver, values ValueSink, pub Publisher, cfg Config, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultConfig().StoreTimeout
	}
	return &Handler{regs: regs, store: store, model: model, values: values, pub: pub, cfg: cfg, log: logger, m: newMetrics(reg), now: now}
}

// ServeCoAP answers a Send: 2.04 once the values are stored; 4.04 from a peer that is not
// registered (Send is bound to the registration of its transport session); 4.05 for other
// methods; 4.15, 4.00 or 4.13 for a payload it cannot take; 5.00 when storing failed.
func (h *Handler) ServeCoAP(ctx context.Context, from transport.Peer, req *transport.Message) *transport.Message {
	if req.Path != Path {
		return h.refuse("not_found", transport.NotFound, "no such resource")
	}
	if req.Code != transport.POST {
		return h.refuse("method", transport.MethodNotAllowed, req.Code.String()+" is not Send: POST "+Path)
	}
	reg, ok := h.regs.ByPeer(from)
	if !ok {
		return h.refuse("not_registered", transport.NotFound, "not registered: Register before Send")
	}
	format := lwm2m.FormatSenMLCBOR // the 1.1 default when a client leaves the option out
	if req.ContentFormat >= 0 {
		format = lwm2m.ContentFormat(req.ContentFormat)
	}
	recs, err := Decode(format, req.Payload, h.model, h.cfg.MaxRecords)
	if err != nil {
		code, reason := transport.BadRequest, "bad_payload"
		switch {
		case errors.Is(err, ErrFormat):
			code, reason = transport.UnsupportedContentFormat, "format"
		case errors.Is(err, ErrTooLarge):
			code, reason = transport.RequestEntityTooLarge, "too_large"
		}
		h.log.Debug("send refused", "endpoint", reg.Endpoint, "err", err)
		return h.refuse(reason, code, err.Error())
	}
	if err := h.keep(ctx, reg.Endpoint, recs); err != nil {
		h.log.Error("send: store", "endpoint", reg.Endpoint, "err", err)
		return h.refuse("store", transport.InternalServerError, "internal error")
	}
	h.m.accepted.Inc()
	h.m.records.Add(float64(len(recs)))
	return transport.NewMessage(transport.Changed)
}

// keep stores recs as endpoint's latest values, one per resource, then hands them to the value
// sink and publishes each as a notification event: to the update driver and the API's event
// stream a value that came by Send is a notification like any other.
func (h *Handler) keep(ctx context.Context, endpoint string, recs []lwm2m.Record) error {
	// Stored before the answer, even if the device's exchange ends meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.StoreTimeout)
	defer cancel()
	now := h.now()
	groups := Group(recs)
	paths := make([]lwm2m.Path, 0, len(groups))
	for p := range groups {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, comparePaths)
	latest := make([]*observe.Latest, 0, len(paths))
	for _, p := range paths {
		l := &observe.Latest{Endpoint: endpoint, Path: p, Records: groups[p], Time: now}
		if err := h.store.SaveLatest(ctx, l); err != nil {
			return fmt.Errorf("send from %s: %s: %w", endpoint, p, err)
		}
		latest = append(latest, l)
	}
	if h.values != nil {
		h.values.Values(ctx, endpoint, recs)
	}
	if h.pub != nil {
		for _, l := range latest {
			h.pub.Publish(events.Event{Type: events.TypeNotification, Endpoint: endpoint, Time: now, Data: l})
		}
	}
	return nil
}

func (h *Handler) refuse(reason string, code transport.Code, msg string) *transport.Message {
	h.m.refused.WithLabelValues(reason).Inc()
	resp := transport.NewMessage(code)
	resp.ContentFormat = 0
	resp.Payload = []byte(msg)
	return resp
}
