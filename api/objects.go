package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// objectAction is one device-management operation under /devices/{endpoint}/objects/{path}[/{action}].
// One echo route per method catches the whole tail; this table dispatches it. The OpenAPI test checks
// the table against the document, as it checks echo's routes.
type objectAction struct {
	method   string
	action   string // the trailing non-numeric segment, "" for none
	op       dm.Op
	minDepth int // path levels allowed: 1 object, 2 instance, 3 resource, 4 resource instance
	maxDepth int
}

var objectActions = []objectAction{
	{http.MethodGet, "", dm.OpRead, 1, 4},
	{http.MethodGet, "discover", dm.OpDiscover, 1, 3},
	{http.MethodPut, "", dm.OpWrite, 2, 4},
	{http.MethodPatch, "", dm.OpWritePartial, 2, 4},
	{http.MethodPut, "attributes", dm.OpWriteAttributes, 1, 4},
	{http.MethodPost, "execute", dm.OpExecute, 3, 3},
	{http.MethodPost, "", dm.OpCreate, 1, 1},
	{http.MethodDelete, "", dm.OpDelete, 2, 2},
	{http.MethodPost, "observe", dm.OpObserve, 1, 4},
	{http.MethodDelete, "observe", dm.OpCancelObserve, 1, 4},
}

// objectMethods are the methods objectActions uses, each once.
func objectMethods() []string {
	var ms []string
	for _, oa := range objectActions {
		if !slices.Contains(ms, oa.method) {
			ms = append(ms, oa.method)
		}
	}
	return ms
}

var depthNames = [...]string{"the root", "an object", "an object instance", "a resource", "a resource instance"}

// objects: every route under /devices/{endpoint}/objects/.
func (a *API) objects(c echo.Context) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	oa, p, err := matchObjectAction(c.Request().Method, c.Param("*"))
	if err != nil {
		return err
	}
	if p.Len() < oa.minDepth || p.Len() > oa.maxDepth {
		return badRequest(codeInvalidPath, "%s needs %s, %s is %s", oa.op, depthRange(oa.minDepth, oa.maxDepth), p, depthNames[p.Len()])
	}
	req := dm.Request{Op: oa.op, Path: p}
	if s := c.QueryParam("format"); s != "" {
		f, ok := lwm2m.ParseFormatName(s)
		if !ok || f == lwm2m.FormatLinkFormat || f == lwm2m.FormatJSONOld {
			return badRequest(codeInvalidFormat, "unknown format %q: use tlv, senml-json, senml-cbor, lwm2m-cbor, cbor, text or opaque", s)
		}
		req.Format = &f
	}
	switch oa.op {
	case dm.OpWrite, dm.OpWritePartial, dm.OpCreate:
		body, err := readBody(c)
		if err != nil {
			return err
		}
		if oa.op == dm.OpCreate && len(strings.TrimSpace(string(body))) == 0 {
			break // an instance with default values; the device decides whether it may
		}
		if req.Records, err = decodeWrite(body, p, a.types); err != nil {
			return err
		}
	case dm.OpWriteAttributes:
		body, err := readBody(c)
		if err != nil {
			return err
		}
		if req.Attributes, err = decodeAttributes(body); err != nil {
			return err
		}
	case dm.OpExecute:
		body, err := readBody(c)
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			var eb executeBody
			if err := decodeStrict(body, &eb); err != nil {
				return err
			}
			req.Args = eb.Args
		}
	}
	var res *dm.Result
	var pending *dm.Pending
	if isRead(oa.op) {
		res, pending, err = a.readDevice(c, ep, req)
	} else {
		res, pending, err = a.doDevice(c.Request().Context(), ep, req)
	}
	if err != nil {
		return err
	}
	return a.writeOutcome(c, res, pending)
}

// doDevice runs req on endpoint, queueing it when the device sleeps in queue mode.
func (a *API) doDevice(ctx context.Context, ep string, req dm.Request) (*dm.Result, *dm.Pending, error) {
	res, pending, err := a.bounded(ctx, ep, req, func(ctx context.Context) (*dm.Result, *dm.Pending, error) {
		return a.op.Do(ctx, ep, req)
	})
	if err != nil {
		return nil, nil, mapError("device "+ep, err)
	}
	return res, pending, nil
}

// bounded runs call within Config.DeviceRequestTimeout: a device that went away answers 504
// device_timeout once it passes, not after the transport's own retransmissions (over a minute
// with the CoAP defaults). Other errors are returned as they are.
func (a *API) bounded(ctx context.Context, ep string, req dm.Request, call func(context.Context) (*dm.Result, *dm.Pending, error)) (*dm.Result, *dm.Pending, error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DeviceRequestTimeout)
	defer cancel()
	res, pending, err := call(dctx)
	if err == nil {
		return res, pending, nil
	}
	if ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		return nil, nil, &apiError{Status: http.StatusGatewayTimeout, Code: codeDeviceTimeout,
			Message: fmt.Sprintf("device %s did not answer %s %s within %s", ep, req.Op, req.Path, a.cfg.DeviceRequestTimeout), Err: err}
	}
	return nil, nil, err
}

// matchObjectAction splits the tail "3/0/1/execute" into the action and the path.
func matchObjectAction(method, tail string) (objectAction, lwm2m.Path, error) {
	// The tail stays escaped: ids and action names never need escaping, so "0%2F1" is refused, not split.
	segs := strings.Split(strings.Trim(tail, "/"), "/")
	action := ""
	if last := segs[len(segs)-1]; last != "" && (last[0] < '0' || last[0] > '9') {
		action = last
		segs = segs[:len(segs)-1]
	}
	var allow []string
	var found *objectAction
	for i := range objectActions {
		if objectActions[i].action != action {
			continue
		}
		allow = append(allow, objectActions[i].method)
		if objectActions[i].method == method {
			found = &objectActions[i]
		}
	}
	if len(allow) == 0 {
		return objectAction{}, lwm2m.Path{}, notFound("unknown action %q: use discover, attributes, execute or observe", action)
	}
	if found == nil {
		return objectAction{}, lwm2m.Path{}, &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed,
			Message: method + " is not allowed here; allowed: " + strings.Join(allow, ", "),
			Allow:   strings.Join(allow, ", ")}
	}
	joined := strings.Join(segs, "/")
	if joined == "" {
		return objectAction{}, lwm2m.Path{}, badRequest(codeInvalidPath, "an object path is required, like /objects/3/0")
	}
	p, err := lwm2m.ParsePath(joined)
	if err != nil {
		return objectAction{}, lwm2m.Path{}, badRequest(codeInvalidPath, "%q is not an LwM2M path: use 1 to 4 ids from 0 to %d", "/"+joined, lwm2m.MaxID)
	}
	return *found, p, nil
}

func depthRange(lo, hi int) string {
	if lo == hi {
		return depthNames[lo]
	}
	return depthNames[lo] + " to " + strings.TrimPrefix(strings.TrimPrefix(depthNames[hi], "an "), "a ") + " path"
}

func decodeAttributes(body []byte) (*dm.Attributes, error) {
	var ab attributesBody
	if err := decodeStrict(body, &ab); err != nil {
		return nil, err
	}
	set := map[string]bool{
		"pmin": ab.Pmin != nil, "pmax": ab.Pmax != nil, "gt": ab.Gt != nil, "lt": ab.Lt != nil,
		"st": ab.St != nil, "epmin": ab.Epmin != nil, "epmax": ab.Epmax != nil,
	}
	some := len(ab.Clear) > 0
	for _, v := range set {
		some = some || v
	}
	if !some {
		return nil, badRequest(codeInvalidJSON, "attributes body sets or clears nothing")
	}
	for _, name := range ab.Clear {
		if !attributeNames[name] {
			return nil, badRequest(codeInvalidValue, "clear: unknown attribute %q", name)
		}
		if set[name] {
			return nil, badRequest(codeInvalidValue, "attribute %q is both set and cleared", name)
		}
	}
	return &dm.Attributes{Pmin: ab.Pmin, Pmax: ab.Pmax, Gt: ab.Gt, Lt: ab.Lt, St: ab.St,
		Epmin: ab.Epmin, Epmax: ab.Epmax, Clear: ab.Clear}, nil
}

// writeOutcome answers 200 with the device's result, or 202 when the request was queued for a sleeping device.
func (a *API) writeOutcome(c echo.Context, res *dm.Result, pending *dm.Pending) error {
	switch {
	case res != nil:
		rj := newResultJSON(res)
		if asOf, ok := c.Get(latestKey).(time.Time); ok {
			rj.Source, rj.AsOf, rj.Format = "latest", asOf, "" // no wire format: these were notified, maybe in several
		}
		return c.JSON(http.StatusOK, rj)
	case pending != nil:
		// A queued request is work done for the caller later, on a device: it is audited like a
		// write, whatever the method (recordAudit).
		c.Set(auditQueuedKey, true)
		auditNote(c, "queued_request", pending.ID)
		pj := newPendingJSON(pending)
		c.Response().Header().Set(echo.HeaderLocation, pj.Links.Self)
		return c.JSON(http.StatusAccepted, pj)
	}
	return mapError("request", errNoOutcome)
}
