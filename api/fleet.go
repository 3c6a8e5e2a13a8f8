package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/registration"
)

// Fleet aggregates the fleet in the database (storage/sqlstore implements it).
type Fleet interface {
	registration.FleetCounter
	fwupdate.StatsStore
}

const fleetPath = Prefix + "/fleet"

// Bounds of the fleet overview: the largest groups are shown, the rest summed up as "more".
const (
	fleetMaxVersions = 50
	fleetMaxFailures = 20
	fleetFailureSpan = 24 * time.Hour
)

// WithFleet serves GET /fleet and the last update state of each device in the device list from
// f. Without it /fleet answers 404 and the list has no last_update.
func (a *API) WithFleet(f Fleet) *API {
	a.fleet = f
	return a
}

func (a *API) fleetRoutes(e *echo.Echo) {
	e.GET(fleetPath, a.getFleet)
}

type fleetJSON struct {
	Devices      fleetDevicesJSON   `json:"devices"`
	Versions     []fleetVersionJSON `json:"versions"`
	MoreVersions bool               `json:"more_versions,omitempty"`
	Updates      fleetUpdatesJSON   `json:"updates"`
	Failures     fleetFailuresJSON  `json:"failures"`
}

type fleetDevicesJSON struct {
	Known       int     `json:"known"`
	Online      int     `json:"online"`
	OnlineShare float64 `json:"online_share"` // online / known, 0 with no device
}

type fleetVersionJSON struct {
	FirmwareVersion string `json:"firmware_version"` // "" when the device never told it
	Model           string `json:"model"`
	Devices         int    `json:"devices"`
	Online          int    `json:"online"`
}

type fleetUpdatesJSON struct {
	InProgress int            `json:"in_progress"`
	ByState    map[string]int `json:"by_state"`
}

type fleetFailuresJSON struct {
	Since    time.Time          `json:"since"`
	Total    int                `json:"total"`
	ByReason []fleetFailureJSON `json:"by_reason"`
	More     bool               `json:"more,omitempty"`
}

type fleetFailureJSON struct {
	DeviceResult int    `json:"device_result,omitempty"` // /5/0/5; absent when the device never told one
	ResultText   string `json:"result_text,omitempty"`
	Reason       string `json:"reason"`
	Jobs         int    `json:"jobs"`
}

// getFleet: GET /fleet, the fleet overview in one call.
func (a *API) getFleet(c echo.Context) error {
	if a.fleet == nil {
		return notFound("this server has no fleet overview")
	}
	out, err := a.fleetOverview(c.Request().Context(), a.cfg.Now())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (a *API) fleetOverview(ctx context.Context, now time.Time) (*fleetJSON, error) {
	f, err := a.fleet.FleetCounts(ctx, now, fleetMaxVersions)
	if err != nil {
		return nil, mapError("fleet", err)
	}
	since := now.Add(-fleetFailureSpan).UTC()
	st, err := a.fleet.JobStats(ctx, since, fleetMaxFailures)
	if err != nil {
		return nil, mapError("fleet updates", err)
	}
	out := &fleetJSON{
		Devices:      fleetDevicesJSON{Known: f.Known, Online: f.Online},
		Versions:     make([]fleetVersionJSON, 0, len(f.Versions)),
		MoreVersions: f.MoreVersions,
		Updates:      fleetUpdatesJSON{ByState: map[string]int{}},
		Failures:     fleetFailuresJSON{Since: since, Total: st.Failed, ByReason: make([]fleetFailureJSON, 0, len(st.Failures)), More: st.MoreFailures},
	}
	if f.Known > 0 {
		out.Devices.OnlineShare = float64(f.Online) / float64(f.Known)
	}
	for _, v := range f.Versions {
		out.Versions = append(out.Versions, fleetVersionJSON(v))
	}
	for s, n := range st.Active {
		out.Updates.ByState[string(s)] = n
		out.Updates.InProgress += n
	}
	for _, fc := range st.Failures {
		j := fleetFailureJSON{Reason: fc.Reason, Jobs: fc.Jobs}
		if fc.DeviceResult != fwupdate.Unknown {
			j.DeviceResult = fc.DeviceResult
			j.ResultText, _ = fwupdate.Reason(fc.DeviceResult)
		}
		out.Failures.ByReason = append(out.Failures.ByReason, j)
	}
	return out, nil
}
