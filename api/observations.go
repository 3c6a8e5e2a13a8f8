package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/observe"
)

type observationsJSON struct {
	Endpoint     string            `json:"endpoint"`
	Observations []observationJSON `json:"observations"`
	Latest       []latestJSON      `json:"latest"`
}

type observationJSON struct {
	Path      string    `json:"path"`
	Format    string    `json:"format,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type latestJSON struct {
	Path    string       `json:"path"`
	Time    time.Time    `json:"time"`
	Records []recordJSON `json:"records"`
}

func newLatestJSON(l *observe.Latest) latestJSON {
	return latestJSON{Path: l.Path.String(), Time: l.Time, Records: recordsJSON(l.Records)}
}

// getObservations: GET /devices/{endpoint}/observations. An unknown device is 404, not an empty list.
func (a *API) getObservations(c echo.Context) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := a.devices.Device(ctx, ep); err != nil {
		return mapError("device "+ep, err)
	}
	obs, err := a.obs.Observations(ctx, ep)
	if err != nil {
		return mapError("device "+ep, err)
	}
	latest, err := a.obs.Latest(ctx, ep)
	if err != nil {
		return mapError("device "+ep, err)
	}
	out := observationsJSON{Endpoint: ep, Observations: make([]observationJSON, 0, len(obs)), Latest: make([]latestJSON, 0, len(latest))}
	for _, o := range obs {
		oj := observationJSON{Path: o.Path.String(), CreatedAt: o.CreatedAt}
		if o.Format != 0 {
			oj.Format = formatName(o.Format)
		}
		out.Observations = append(out.Observations, oj)
	}
	for _, l := range latest {
		out.Latest = append(out.Latest, newLatestJSON(l))
	}
	return c.JSON(http.StatusOK, out)
}
