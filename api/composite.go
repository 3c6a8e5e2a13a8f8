package api

import (
	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// Composite operations (LwM2M 1.1+): several paths of one device in one CoAP request.
const (
	compositeReadPath    = Prefix + "/devices/:endpoint/composite/read"
	compositeWritePath   = Prefix + "/devices/:endpoint/composite/write"
	compositeObservePath = Prefix + "/devices/:endpoint/composite/observe"
)

func (a *API) compositeRoutes(e *echo.Echo) {
	e.POST(compositeReadPath, a.compositeRead)
	e.POST(compositeWritePath, a.compositeWrite)
	e.POST(compositeObservePath, a.compositeObserve)
	e.DELETE(compositeObservePath, a.compositeCancelObserve)
}

// compositeReadBody lists the paths of a Read-Composite.
type compositeReadBody struct {
	Paths []string `json:"paths"`
}

// compositeFormat reads ?format=, which composite operations allow only in the SenML and LwM2M
// CBOR formats.
func compositeFormat(c echo.Context) (*lwm2m.ContentFormat, error) {
	s := c.QueryParam("format")
	if s == "" {
		return nil, nil
	}
	f, ok := lwm2m.ParseFormatName(s)
	if !ok || (f != lwm2m.FormatSenMLCBOR && f != lwm2m.FormatSenMLJSON && f != lwm2m.FormatLwM2MCBOR) {
		return nil, badRequest(codeInvalidFormat, "format %q cannot carry a composite operation: use senml-cbor, senml-json or lwm2m-cbor", s)
	}
	return &f, nil
}

// compositePathsRequest reads the endpoint, ?format= and the {"paths": [...]} body of a
// Read-Composite or Observe-Composite.
func compositePathsRequest(c echo.Context, op dm.Op) (string, dm.Request, error) {
	ep, err := endpointParam(c)
	if err != nil {
		return "", dm.Request{}, err
	}
	format, err := compositeFormat(c)
	if err != nil {
		return "", dm.Request{}, err
	}
	body, err := readBody(c)
	if err != nil {
		return "", dm.Request{}, err
	}
	var rb compositeReadBody
	if err := decodeStrict(body, &rb); err != nil {
		return "", dm.Request{}, err
	}
	if len(rb.Paths) == 0 || len(rb.Paths) > codec.MaxPaths {
		return "", dm.Request{}, badRequest(codeInvalidJSON, `"paths" needs 1 to %d LwM2M paths, got %d`, codec.MaxPaths, len(rb.Paths))
	}
	req := dm.Request{Op: op, Path: lwm2m.RootPath, Format: format, Paths: make([]lwm2m.Path, len(rb.Paths))}
	for i, s := range rb.Paths {
		p, err := lwm2m.ParsePath(s)
		if err != nil || p.Len() == 0 {
			return "", dm.Request{}, badRequest(codeInvalidPath, "paths[%d]: %q is not an object, instance, resource or resource instance path", i, s)
		}
		req.Paths[i] = p
	}
	return ep, req, nil
}

// compositeRead: POST /devices/{endpoint}/composite/read. The device answers every path in one
// FETCH; a sleeping device's read is handled as a plain Read's is (asleep.go).
func (a *API) compositeRead(c echo.Context) error {
	ep, req, err := compositePathsRequest(c, dm.OpReadComposite)
	if err != nil {
		return err
	}
	res, pending, err := a.readDevice(c, ep, req)
	if err != nil {
		return err
	}
	return a.writeOutcome(c, res, pending)
}

// compositeWrite: POST /devices/{endpoint}/composite/write, with "records" as a Write's body
// (any resource of any object); one iPATCH carries them all.
func (a *API) compositeWrite(c echo.Context) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	format, err := compositeFormat(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	recs, err := decodeWrite(body, lwm2m.RootPath, a.types)
	if err != nil {
		return err
	}
	res, pending, err := a.doDevice(c.Request().Context(), ep, dm.Request{Op: dm.OpWriteComposite, Path: lwm2m.RootPath, Format: format, Records: recs})
	if err != nil {
		return err
	}
	return a.writeOutcome(c, res, pending)
}

// compositeObserve: POST /devices/{endpoint}/composite/observe. One observation of all the
// paths (a FETCH with Observe 0); its notifications carry all of them.
func (a *API) compositeObserve(c echo.Context) error {
	ep, req, err := compositePathsRequest(c, dm.OpObserveComposite)
	if err != nil {
		return err
	}
	res, pending, err := a.doDevice(c.Request().Context(), ep, req)
	if err != nil {
		return err
	}
	return a.writeOutcome(c, res, pending)
}

// compositeCancelObserve: DELETE /devices/{endpoint}/composite/observe. The paths are those
// the stored observation holds, as the cancel repeats the FETCH with Observe 1.
func (a *API) compositeCancelObserve(c echo.Context) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	if a.obs == nil {
		return notFound("device %s has no composite observation", ep)
	}
	obs, err := a.obs.Observations(c.Request().Context(), ep)
	if err != nil {
		return mapError("device "+ep, err)
	}
	for _, o := range obs {
		if o.Path.Len() == 0 && len(o.Paths) > 0 {
			req := dm.Request{Op: dm.OpCancelObserveComposite, Path: lwm2m.RootPath, Paths: o.Paths}
			if o.Format != 0 {
				f := o.Format
				req.Format = &f
			}
			res, pending, err := a.doDevice(c.Request().Context(), ep, req)
			if err != nil {
				return err
			}
			return a.writeOutcome(c, res, pending)
		}
	}
	return notFound("device %s has no composite observation", ep)
}
