package api

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/dm"
)

// errNoOutcome: the Operator answered neither a result nor a pending request, which is a bug.
var errNoOutcome = errors.New("api: operator returned no result and no pending request")

// resultJSON is a device's answer.
type resultJSON struct {
	Code     string       `json:"code"`
	Format   string       `json:"format,omitempty"`
	Records  []recordJSON `json:"records,omitempty"`
	Links    string       `json:"links,omitempty"`    // discover: the CoRE link-format payload
	Payload  []byte       `json:"payload,omitempty"`  // a body lwota could not decode, base64
	Location string       `json:"location,omitempty"` // create: the new instance, "/3303/1"
	// Source "latest": the device sleeps and these are the latest values it notified, as of AsOf
	// (the oldest record's time), not a fresh Read.
	Source string    `json:"source,omitempty"`
	AsOf   time.Time `json:"as_of,omitzero"`
}

func newResultJSON(r *dm.Result) *resultJSON {
	out := &resultJSON{Code: r.Code, Links: r.Links, Payload: r.Payload, Location: r.Location}
	if r.Format != 0 || r.Code == "2.05" && len(r.Records) > 0 {
		out.Format = formatName(r.Format)
	}
	if len(r.Records) > 0 {
		out.Records = recordsJSON(r.Records)
	}
	return out
}

// pendingJSON is a request queued for a sleeping device.
type pendingJSON struct {
	RequestID string      `json:"request_id"`
	Endpoint  string      `json:"endpoint"`
	State     string      `json:"state"` // queued, sent, done, failed
	Op        string      `json:"op"`
	Path      string      `json:"path"`
	Result    *resultJSON `json:"result,omitempty"`  // state done
	Failure   string      `json:"failure,omitempty"` // state failed: why
	Attempts  int         `json:"attempts"`          // wake-ups at which sending timed out
	CreatedAt time.Time   `json:"created_at,omitzero"`
	UpdatedAt time.Time   `json:"updated_at,omitzero"`
	Links     links       `json:"links"`
}

type links struct {
	Self string `json:"self"`
}

func newPendingJSON(p *dm.Pending) pendingJSON {
	out := pendingJSON{
		RequestID: p.ID,
		Endpoint:  p.Endpoint,
		State:     string(p.State),
		Op:        string(p.Request.Op),
		Path:      p.Request.Path.String(),
		Failure:   p.Error,
		Attempts:  p.Attempts,
		CreatedAt: p.CreatedAt,
		UpdatedAt: p.UpdatedAt,
		Links:     links{Self: Prefix + "/requests/" + url.PathEscape(p.ID)},
	}
	if p.Result != nil {
		out.Result = newResultJSON(p.Result)
	}
	return out
}

// getRequest: GET /requests/{id}
func (a *API) getRequest(c echo.Context) error {
	raw := c.Param("id")
	id, err := url.PathUnescape(raw)
	if err != nil || id == "" {
		return badRequest(codeInvalidPath, "request id %q is not a valid URL path segment", raw)
	}
	p, err := a.op.Pending(c.Request().Context(), id)
	if err != nil {
		return mapError("request "+id, err)
	}
	return c.JSON(http.StatusOK, newPendingJSON(p))
}
