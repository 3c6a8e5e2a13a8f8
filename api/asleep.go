package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// NowOperator runs a request on an awake device and never queues it: a sleeping queue-mode
// device fails with dm.ErrAsleep (*server.Server implements it). With it, reads are kept out
// of the durable queue of sleeping devices (see readSleeping).
type NowOperator interface {
	DoNow(ctx context.Context, endpoint string, req dm.Request) (*dm.Result, error)
}

// QueueReader lists the requests waiting for a sleeping device (*sqlstore.Store implements it).
type QueueReader interface {
	PendingFor(ctx context.Context, endpoint string) ([]*dm.Pending, error)
}

// WithQueue lets reads of writer roles fill at most Config.MaxQueuedReads of a sleeping
// device's queue, so that the rest stays free for writes.
func (a *API) WithQueue(q QueueReader) *API {
	a.queue = q
	return a
}

// readOnly reports whether role may only read: its reads never go into a device's queue.
func readOnly(role apitoken.Role) bool { return role == apitoken.RoleSupport }

func isRead(op dm.Op) bool {
	return op == dm.OpRead || op == dm.OpDiscover || op == dm.OpReadComposite
}

// readDevice runs a Read or Discover. The device is asked now; when it sleeps in queue mode, a
// read-only caller is answered from the latest values the device notified (200 with source
// "latest") or with 409 device_asleep, and a writer's read is queued only while reads hold less
// than Config.MaxQueuedReads of the device's queue.
func (a *API) readDevice(c echo.Context, ep string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	now, ok := a.op.(NowOperator)
	if !ok {
		return a.doDevice(c.Request().Context(), ep, req)
	}
	ctx := c.Request().Context()
	res, _, err := a.bounded(ctx, ep, req, func(ctx context.Context) (*dm.Result, *dm.Pending, error) {
		r, err := now.DoNow(ctx, ep, req)
		return r, nil, err
	})
	switch {
	case err == nil:
		return res, nil, nil
	case !errors.Is(err, dm.ErrAsleep):
		return nil, nil, mapError("device "+ep, err)
	}
	if tok := principal(c); tok != nil && readOnly(tok.Role) {
		if res := a.latestFor(ctx, ep, req); res != nil {
			c.Set(latestKey, res.asOf)
			return res.result, nil, nil
		}
		return nil, nil, a.asleepError(ctx, ep, "read-only tokens do not queue requests for sleeping devices")
	}
	if a.queue != nil {
		waiting, err := a.queue.PendingFor(ctx, ep)
		if err != nil {
			return nil, nil, mapError("device "+ep, err)
		}
		reads := 0
		for _, p := range waiting {
			if isRead(p.Request.Op) {
				reads++
			}
		}
		if reads >= a.cfg.MaxQueuedReads {
			return nil, nil, &apiError{Status: http.StatusTooManyRequests, Code: codeQueueFull,
				Message: fmt.Sprintf("device %s is asleep and already has %d reads queued; the rest of its queue is kept for writes", ep, reads)}
		}
	}
	return a.doDevice(ctx, ep, req)
}

// latestKey marks an answer made from the latest notified values, with their time.
const latestKey = "lwota.latest"

type latestResult struct {
	result *dm.Result
	asOf   time.Time
}

// latestFor collects the notified values at or under req's path, or nil when there are none.
func (a *API) latestFor(ctx context.Context, ep string, req dm.Request) *latestResult {
	if req.Op != dm.OpRead || a.obs == nil {
		return nil
	}
	latest, err := a.obs.Latest(ctx, ep)
	if err != nil {
		a.logger.Warn("latest values", "endpoint", ep, "err", err)
		return nil
	}
	var recs []lwm2m.Record
	var asOf time.Time
	for _, l := range latest {
		for _, r := range l.Records {
			if r.Path.HasPrefix(req.Path) && !slices.ContainsFunc(recs, func(x lwm2m.Record) bool { return x.Path == r.Path }) {
				recs = append(recs, r)
				if asOf.IsZero() || l.Time.Before(asOf) {
					asOf = l.Time // the oldest value's time: every record is at least this fresh
				}
			}
		}
	}
	if len(recs) == 0 {
		return nil
	}
	slices.SortFunc(recs, func(x, y lwm2m.Record) int { return pathOrder(x.Path, y.Path) })
	return &latestResult{result: &dm.Result{Code: "2.05", Records: recs}, asOf: asOf}
}

// asleepError is 409 device_asleep with the time the device is due to talk to lwota again (its
// registration must be updated before its lifetime runs out), in the message and Retry-After.
func (a *API) asleepError(ctx context.Context, ep, why string) *apiError {
	e := &apiError{Status: http.StatusConflict, Code: codeDeviceAsleep,
		Message: fmt.Sprintf("device %s is asleep (queue mode); %s", ep, why)}
	reg, err := a.devices.Device(ctx, ep)
	if err != nil || reg.Lifetime <= 0 {
		return e
	}
	due := reg.LastSeen.Add(time.Duration(reg.Lifetime) * time.Second)
	e.ExpectedAt = due.UTC()
	e.Message += fmt.Sprintf("; it is expected to talk to lwota by %s", e.ExpectedAt.Format(time.RFC3339))
	if wait := due.Sub(a.cfg.Now()); wait > 0 {
		e.RetryAfter = strconv.Itoa(int(wait.Seconds()) + 1)
	}
	return e
}

// pathOrder orders paths id by id, a parent before its children.
func pathOrder(x, y lwm2m.Path) int {
	for i := 0; i < min(x.Len(), y.Len()); i++ {
		if d := int(x.ID(i)) - int(y.ID(i)); d != 0 {
			return d
		}
	}
	return x.Len() - y.Len()
}
