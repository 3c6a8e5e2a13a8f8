package api

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/fwupdate"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
)

// deviceJSON is a registration as the API shows it; its own type so that storage fields never leak
// into the contract by accident.
type deviceJSON struct {
	Endpoint        string            `json:"endpoint"`
	RegistrationID  string            `json:"registration_id"`
	Online          bool              `json:"online"`
	ExpiresAt       time.Time         `json:"expires_at"`
	LwM2MVersion    string            `json:"lwm2m_version"`
	Lifetime        uint32            `json:"lifetime"`
	Binding         string            `json:"binding"`
	QueueMode       bool              `json:"queue_mode"`
	SMSNumber       string            `json:"sms_number,omitempty"`
	RootPath        string            `json:"root_path"`
	ContentFormats  []string          `json:"content_formats"`
	Objects         []objectLinkJSON  `json:"objects"`
	Identity        string            `json:"identity,omitempty"`
	Manufacturer    string            `json:"manufacturer,omitempty"` // /3/0/0
	Model           string            `json:"model,omitempty"`        // /3/0/1
	FirmwareVersion string            `json:"firmware_version,omitempty"`
	DeviceType      string            `json:"device_type,omitempty"` // /3/0/17
	Labels          map[string]string `json:"labels,omitempty"`
	RegisteredAt    time.Time         `json:"registered_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	LastSeen        time.Time         `json:"last_seen"`
	DeregisteredAt  time.Time         `json:"deregistered_at,omitzero"`
	// UnreachableSince: the device stopped answering lwota's requests then (cleared when it
	// talks again); absent while it answers.
	UnreachableSince time.Time `json:"unreachable_since,omitzero"`
	// LastUpdate is the device's newest firmware update job (device list only, WithFleet).
	LastUpdate *lastUpdateJSON `json:"last_update,omitempty"`
}

// lastUpdateJSON sums up a device's newest firmware update job.
type lastUpdateJSON struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	ImageVersion string    `json:"image_version"`
	UpdatedAt    time.Time `json:"updated_at"`
}

type objectLinkJSON struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
}

func newDeviceJSON(r *registration.Registration, now time.Time) deviceJSON {
	d := deviceJSON{
		Endpoint:         r.Endpoint,
		RegistrationID:   r.ID,
		Online:           r.Online(now),
		ExpiresAt:        r.ExpiresAt(),
		LwM2MVersion:     r.Version,
		Lifetime:         r.Lifetime,
		Binding:          r.Binding,
		QueueMode:        r.QueueMode,
		SMSNumber:        r.SMSNumber,
		RootPath:         r.RootPath,
		ContentFormats:   make([]string, 0, len(r.ContentFormats)),
		Objects:          make([]objectLinkJSON, 0, len(r.Objects)),
		Identity:         r.Identity,
		Manufacturer:     r.Manufacturer,
		Model:            r.Model,
		FirmwareVersion:  r.FirmwareVersion,
		DeviceType:       r.DeviceType,
		Labels:           r.Labels,
		RegisteredAt:     r.RegisteredAt,
		UpdatedAt:        r.UpdatedAt,
		LastSeen:         r.LastSeen,
		DeregisteredAt:   r.DeregisteredAt,
		UnreachableSince: r.UnreachableSince,
	}
	for _, ct := range r.ContentFormats {
		d.ContentFormats = append(d.ContentFormats, formatName(lwm2m.ContentFormat(ct)))
	}
	for _, o := range r.Objects {
		d.Objects = append(d.Objects, objectLinkJSON{Path: o.Path.String(), Version: o.Version})
	}
	return d
}

// formatName is the API name of a content format; numbers lwota does not know stay numbers, as text.
func formatName(f lwm2m.ContentFormat) string {
	if n := f.Name(); n != "" {
		return n
	}
	return strconv.Itoa(int(f))
}

type deviceList struct {
	Devices []deviceJSON `json:"devices"`
	// Total counts every device the search matches, on all pages (absent when the server
	// cannot count).
	Total      *int   `json:"total,omitempty"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// listDevices: GET /devices?prefix=&online=&object=&firmware=&manufacturer=&model=&device_type=&label=k:v&sort=&cursor=&limit=
// (firmware: a version, or a comparison such as "< 1.4.2": parseFirmwareFilter; sort: parseSort)
func (a *API) listDevices(c echo.Context) error {
	q := c.QueryParams()
	f := registration.Filter{
		EndpointPrefix: q.Get("prefix"),
		Manufacturer:   q.Get("manufacturer"),
		Model:          q.Get("model"),
		DeviceType:     q.Get("device_type"),
		Now:            a.cfg.Now(),
	}
	if s := q.Get("firmware"); s != "" {
		op, v, err := parseFirmwareFilter(s)
		if err != nil {
			return err
		}
		f.FirmwareOp, f.FirmwareVersion = op, v
	}
	sortKey, desc, err := parseSort(q.Get("sort"))
	if err != nil {
		return err
	}
	if sortKey != registration.SortEndpoint {
		f.Sort = sortKey
	}
	f.Desc = desc
	labels, err := parseLabelFilter(q, deviceLabelKey)
	if err != nil {
		return err
	}
	f.Labels = labels
	if s := q.Get("online"); s != "" {
		var b bool
		switch s {
		case "true":
			b = true
		case "false":
		default:
			return badRequest(codeInvalidQuery, "online must be true or false, not %q", s)
		}
		f.Online = &b
	}
	if s := q.Get("object"); s != "" {
		id, err := strconv.ParseUint(s, 10, 16)
		if err != nil || id > lwm2m.MaxID {
			return badRequest(codeInvalidQuery, "object must be an object id from 0 to %d, not %q", lwm2m.MaxID, s)
		}
		o := uint16(id)
		f.ObjectID = &o
	}
	pg, err := a.parsePage(q)
	if err != nil {
		return err
	}
	f.After, f.Limit = pg.after, pg.fetch()
	if f.Sort != "" && pg.after != "" {
		if f.AfterSort, f.After, err = parseSortCursor(pg.after); err != nil {
			return err
		}
	}
	limit := pg.limit

	ctx := c.Request().Context()
	regs, err := a.devices.ListDevices(ctx, f)
	if err != nil {
		return mapError("device list", err)
	}
	out := deviceList{Devices: make([]deviceJSON, 0, min(len(regs), limit))}
	if len(regs) > limit {
		regs = regs[:limit]
		last := regs[limit-1]
		out.NextCursor = cursor(last.Endpoint)
		if f.Sort != "" {
			out.NextCursor = sortCursor(last, f.Sort)
		}
	}
	if dc, ok := a.devices.(DeviceCounter); ok {
		n, err := dc.CountDevices(ctx, f)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return mapError("device count", err)
		}
		if err == nil {
			out.Total = &n
		}
	}
	var latest map[string]*fwupdate.Job
	if a.fleet != nil && len(regs) > 0 {
		eps := make([]string, len(regs))
		for i, r := range regs {
			eps[i] = r.Endpoint
		}
		if latest, err = a.fleet.LatestJobs(ctx, eps); err != nil {
			return mapError("last updates", err)
		}
	}
	for _, r := range regs {
		d := newDeviceJSON(r, f.Now)
		if j := latest[r.Endpoint]; j != nil {
			d.LastUpdate = &lastUpdateJSON{ID: j.ID, State: string(j.State), Reason: j.Reason,
				ImageVersion: j.ImageVersion, UpdatedAt: j.UpdatedAt}
		}
		out.Devices = append(out.Devices, d)
	}
	return c.JSON(http.StatusOK, out)
}

// getDevice: GET /devices/{endpoint}
func (a *API) getDevice(c echo.Context) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	r, err := a.devices.Device(c.Request().Context(), ep)
	if err != nil {
		return mapError("device "+ep, err)
	}
	return c.JSON(http.StatusOK, newDeviceJSON(r, a.cfg.Now()))
}

// endpointParam is the endpoint name of the route, unescaped (Handler routes on the escaped path).
func endpointParam(c echo.Context) (string, error) {
	raw := c.Param("endpoint")
	ep, err := url.PathUnescape(raw)
	if err != nil || ep == "" {
		return "", badRequest(codeInvalidPath, "endpoint name %q is not a valid URL path segment", raw)
	}
	return ep, nil
}
