package api

import (
	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/codec"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// Composite operations (LwM2M 1.1+): several paths of one device in one CoAP request.
const (
	compositeReadPath  = Prefix + "/devices/:endpoint/composite/read"
	compositeWritePath = Prefix + "/devices/:endpoint/composite/write"
)

func (a *API) compositeRoutes(e *echo.Echo) {
	e.POST(compositeReadPath, a.compositeRead)
	e.POST(compositeWritePath, a.compositeWrite)
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

// compositeRead: POST /devices/{endpoint}/composite/read. The device answers every path in one
// FETCH; a sleeping device's read is handled as a plain Read's is (asleep.go).
func (a *API) compositeRead(c echo.Context) error {
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
	var rb compositeReadBody
	if err := decodeStrict(body, &rb); err != nil {
		return err
	}
	if len(rb.Paths) == 0 || len(rb.Paths) > codec.MaxPaths {
		return badRequest(codeInvalidJSON, `"paths" needs 1 to %d LwM2M paths, got %d`, codec.MaxPaths, len(rb.Paths))
	}
	req := dm.Request{Op: dm.OpReadComposite, Path: lwm2m.RootPath, Format: format, Paths: make([]lwm2m.Path, len(rb.Paths))}
	for i, s := range rb.Paths {
		p, err := lwm2m.ParsePath(s)
		if err != nil || p.Len() == 0 {
			return badRequest(codeInvalidPath, "paths[%d]: %q is not an object, instance, resource or resource instance path", i, s)
		}
		req.Paths[i] = p
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
