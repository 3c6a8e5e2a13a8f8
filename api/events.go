package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/observe"
	"github.com/lwota/lwota/server/registration"
)

// eventJSON is one server-sent event's data line.
type eventJSON struct {
	Type     string    `json:"type"`
	Endpoint string    `json:"endpoint"`
	Time     time.Time `json:"time"`
	Data     any       `json:"data,omitempty"`
}

// streamEvents: GET /events?endpoint=&kind= streams events as text/event-stream until the client leaves.
// Each event is "event: <type>" and "data: <json>"; comment lines (": keepalive") keep proxies from
// closing an idle stream. There are no ids and no replay: a client that reconnects sees new events only.
func (a *API) streamEvents(c echo.Context) error {
	want, err := eventFilter(c)
	if err != nil {
		return err
	}
	holder := ""
	if tok := principal(c); tok != nil {
		holder = tok.ID
	}
	if err := a.streams.acquire(holder, a.cfg.MaxStreamsPerToken, a.cfg.MaxStreams); err != nil {
		return err
	}
	defer a.streams.release(holder)
	if a.openGauge != nil {
		a.openGauge.Inc()
		defer a.openGauge.Dec()
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel() // ends the subscription
	ch := a.sub.Subscribe(ctx)

	w := c.Response()
	// A stream outlives any server WriteTimeout; not every writer supports deadlines, which is fine.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil {
		return nil
	}
	w.Flush()

	tick := time.NewTicker(a.cfg.KeepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if !want(ev) {
				continue
			}
			err = a.writeEvent(w, ev)
		}
		if err != nil {
			return nil // the client is gone; the response is committed, nothing to answer
		}
		w.Flush()
	}
}

func (a *API) writeEvent(w *echo.Response, ev events.Event) error {
	data, err := json.Marshal(eventJSON{Type: ev.Type, Endpoint: ev.Endpoint, Time: ev.Time, Data: a.eventData(ev.Data)})
	if err != nil {
		// An event whose data does not marshal is dropped with a note, not the stream.
		_, err = fmt.Fprintf(w, ": dropped %s event: data does not marshal\n\n", sanitizeLine(ev.Type))
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", sanitizeLine(ev.Type), data)
	return err
}

// sanitizeLine keeps a field on one line of the stream.
func sanitizeLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// eventData renders the server's own types the way the rest of the API does.
func (a *API) eventData(d any) any {
	switch v := d.(type) {
	case []lwm2m.Record:
		return recordsJSON(v)
	case lwm2m.Record:
		return recordsJSON([]lwm2m.Record{v})[0]
	case *observe.Latest:
		return newLatestJSON(v)
	case observe.Latest:
		return newLatestJSON(&v)
	case *dm.Pending:
		return newPendingJSON(v)
	case dm.Pending:
		return newPendingJSON(&v)
	case *dm.Result:
		return newResultJSON(v)
	case *registration.Registration:
		return newDeviceJSON(v, a.cfg.Now())
	}
	// events.JobTransition and events.CampaignChange carry their own JSON tags.
	return d
}
