package api

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/fwupdate"
)

// Updates runs single-device firmware updates (the fwupdate driver implements it).
type Updates interface {
	// Start creates a job for endpoint: fwupdate.ErrInvalidRequest, ErrImageNotFound, ErrDeviceNotFound,
	// ErrActiveJob (the device already has one), ErrNotRunning.
	Start(ctx context.Context, endpoint string, req fwupdate.StartRequest) (*fwupdate.Job, error)
	// Jobs returns the newest limit jobs of endpoint, newest first.
	Jobs(ctx context.Context, endpoint string, limit int) ([]*fwupdate.Job, error)
	// Job returns one job, or fwupdate.ErrJobNotFound.
	Job(ctx context.Context, id string) (*fwupdate.Job, error)
	// History returns a job's transitions, oldest first.
	History(ctx context.Context, id string) ([]fwupdate.Transition, error)
	// Cancel ends a job: fwupdate.ErrJobNotFound, or ErrInvalidTransition when it already ended.
	Cancel(ctx context.Context, id, reason string) (*fwupdate.Job, error)
}

const updatesPath = Prefix + "/devices/:endpoint/updates"

// Limits of the update routes.
const (
	defaultUpdateLimit = 20   // jobs listed without ?limit=
	maxUpdateLimit     = 200  // ?limit= is lowered to this
	maxAttemptsLimit   = 20   // policy.max_attempts is 1..maxAttemptsLimit
	maxCancelReason    = 1024 // bytes of a cancel reason, which the job's history keeps
)

// WithUpdates serves the firmware update routes under /devices/{endpoint}/updates over u. Without it
// these routes answer 404.
func (a *API) WithUpdates(u Updates) *API {
	a.updates = u
	return a
}

func (a *API) updateRoutes(e *echo.Echo) {
	e.POST(updatesPath, a.startUpdate)
	e.GET(updatesPath, a.listUpdates)
	e.GET(updatesPath+"/:id", a.getUpdate)
	e.POST(updatesPath+"/:id/cancel", a.cancelUpdate)
}

func (a *API) updater() (Updates, error) {
	if a.updates == nil {
		return nil, notFound("this server runs no firmware updates")
	}
	return a.updates, nil
}

// policyJSON is a job's policy: all fields on output; on input each one is optional and defaults to
// fwupdate.DefaultPolicy's. Durations are Go duration strings ("90s", "1h30m").
type policyJSON struct {
	MaxAttempts *int    `json:"max_attempts,omitempty"`
	Backoff     *string `json:"backoff,omitempty"`
	BackoffMax  *string `json:"backoff_max,omitempty"`
	Strict      *bool   `json:"strict,omitempty"`
	MinLinkRate *int    `json:"min_link_rate,omitempty"`
	StepSlack   *string `json:"step_slack,omitempty"`
	BlockSize   *int    `json:"block_size,omitempty"`
}

func newPolicyJSON(p fwupdate.Policy) policyJSON {
	backoff, backoffMax, slack := formatDuration(p.BackoffBase), formatDuration(p.BackoffMax), formatDuration(p.StepSlack)
	return policyJSON{MaxAttempts: &p.MaxAttempts, Backoff: &backoff, BackoffMax: &backoffMax, Strict: &p.Strict,
		MinLinkRate: &p.MinLinkRate, StepSlack: &slack, BlockSize: &p.BlockSize}
}

// formatDuration is d as Go prints it, without the zero units at the end: "1m", "1h", "1h30m", "90ms".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// policy is in laid over fwupdate.DefaultPolicy, checked.
func (in policyJSON) policy() (fwupdate.Policy, error) {
	p := fwupdate.DefaultPolicy()
	if in.MaxAttempts != nil {
		if n := *in.MaxAttempts; n < 1 || n > maxAttemptsLimit {
			return p, badRequest(codeInvalidRequest, "policy.max_attempts must be 1 to %d, not %d", maxAttemptsLimit, n)
		}
		p.MaxAttempts = *in.MaxAttempts
	}
	for _, d := range []struct {
		name string
		in   *string
		dst  *time.Duration
	}{
		{"backoff", in.Backoff, &p.BackoffBase},
		{"backoff_max", in.BackoffMax, &p.BackoffMax},
		{"step_slack", in.StepSlack, &p.StepSlack},
	} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(strings.TrimSpace(*d.in))
		if err != nil {
			return p, badRequest(codeInvalidRequest, "policy.%s must be a duration such as \"90s\" or \"1h30m\", not %q", d.name, *d.in)
		}
		if v < 0 {
			return p, badRequest(codeInvalidRequest, "policy.%s must not be negative, not %q", d.name, *d.in)
		}
		*d.dst = v
	}
	if in.Strict != nil {
		p.Strict = *in.Strict
	}
	if in.MinLinkRate != nil {
		if *in.MinLinkRate < 0 {
			return p, badRequest(codeInvalidRequest, "policy.min_link_rate must be bytes per second, 0 or more, not %d", *in.MinLinkRate)
		}
		p.MinLinkRate = *in.MinLinkRate
	}
	if in.BlockSize != nil {
		if n := *in.BlockSize; n != 0 && (n < 16 || n > 1024 || bits.OnesCount(uint(n)) != 1) {
			return p, badRequest(codeInvalidRequest, "policy.block_size must be 0 or a power of two from 16 to 1024, not %d", n)
		}
		p.BlockSize = *in.BlockSize
	}
	return p, nil
}

// startUpdateBody is the body of POST /devices/{endpoint}/updates.
type startUpdateBody struct {
	ImageID string      `json:"image_id"`
	Method  string      `json:"method"`
	Policy  *policyJSON `json:"policy"`
	// Force starts the update although the image is for another model or the device already runs
	// its version (admin tokens only; audited).
	Force bool `json:"force"`
}

// cancelUpdateBody is the optional body of POST /devices/{endpoint}/updates/{id}/cancel.
type cancelUpdateBody struct {
	Reason string `json:"reason"`
}

// jobJSON is a firmware update job as the API shows it; its own type, so that the driver's fields
// never reach the contract by accident.
type jobJSON struct {
	ID               string               `json:"id"`
	Endpoint         string               `json:"endpoint"`
	ImageID          string               `json:"image_id"`
	ImageVersion     string               `json:"image_version"`
	ImageSize        int64                `json:"image_size"`
	Method           string               `json:"method"`
	Delivery         string               `json:"delivery"` // "" until the attempt chose one
	State            string               `json:"state"`
	Reason           string               `json:"reason"`
	Attempt          int                  `json:"attempt"`
	MaxAttempts      int                  `json:"max_attempts"`
	CreatedAt        time.Time            `json:"created_at"`
	UpdatedAt        time.Time            `json:"updated_at"`
	Steps            map[string]time.Time `json:"steps"`
	BytesDelivered   int64                `json:"bytes_delivered"`
	Progress         float64              `json:"progress"`
	DeviceState      *int                 `json:"device_state,omitempty"`
	DeviceStateText  string               `json:"device_state_text,omitempty"`
	DeviceResult     *int                 `json:"device_result,omitempty"`
	DeviceResultText string               `json:"device_result_text,omitempty"`
	FromVersion      string               `json:"from_version"`
	NextAttemptAt    time.Time            `json:"next_attempt_at,omitzero"`
	CampaignID       string               `json:"campaign_id,omitempty"`
	Policy           policyJSON           `json:"policy"`
	Links            links                `json:"links"`
}

// jobDetailJSON is one job with its history (GET /devices/{endpoint}/updates/{id}).
type jobDetailJSON struct {
	jobJSON
	History []transitionJSON `json:"history"`
}

type transitionJSON struct {
	Seq          int       `json:"seq"`
	From         string    `json:"from"` // "" for the creation
	To           string    `json:"to"`
	At           time.Time `json:"at"`
	Reason       string    `json:"reason"`
	DeviceState  *int      `json:"device_state,omitempty"`
	DeviceResult *int      `json:"device_result,omitempty"`
	Attempt      int       `json:"attempt"`
}

type jobList struct {
	Updates []jobJSON `json:"updates"`
}

// deviceStates are the texts of the Object 5 State resource (/5/0/3).
var deviceStates = [...]string{"idle", "downloading", "downloaded", "updating"}

func deviceStateText(s int) string {
	if s >= 0 && s < len(deviceStates) {
		return deviceStates[s]
	}
	return "unknown state " + strconv.Itoa(s)
}

// known is v, or nil when the device has not reported it (fwupdate.Unknown).
func known(v int) *int {
	if v == fwupdate.Unknown {
		return nil
	}
	return &v
}

func jobURL(j *fwupdate.Job) string {
	return Prefix + "/devices/" + url.PathEscape(j.Endpoint) + "/updates/" + url.PathEscape(j.ID)
}

func newJobJSON(j *fwupdate.Job) jobJSON {
	out := jobJSON{
		ID:             j.ID,
		Endpoint:       j.Endpoint,
		ImageID:        j.ImageID,
		ImageVersion:   j.ImageVersion,
		ImageSize:      j.ImageSize,
		Method:         j.Method,
		Delivery:       j.Delivery,
		State:          string(j.State),
		Reason:         j.Reason,
		Attempt:        j.Attempt,
		MaxAttempts:    j.Policy.MaxAttempts,
		CreatedAt:      j.CreatedAt,
		UpdatedAt:      j.UpdatedAt,
		Steps:          make(map[string]time.Time, len(j.StepAt)),
		BytesDelivered: j.BytesDelivered,
		DeviceState:    known(j.DeviceState),
		DeviceResult:   known(j.DeviceResult),
		FromVersion:    j.FromVersion,
		NextAttemptAt:  j.NextAttemptAt,
		CampaignID:     j.CampaignID,
		Policy:         newPolicyJSON(j.Policy),
		Links:          links{Self: jobURL(j)},
	}
	for s, t := range j.StepAt {
		out.Steps[string(s)] = t
	}
	if j.ImageSize > 0 {
		out.Progress = min(max(float64(j.BytesDelivered)/float64(j.ImageSize), 0), 1)
	}
	if out.DeviceState != nil {
		out.DeviceStateText = deviceStateText(j.DeviceState)
	}
	if out.DeviceResult != nil {
		out.DeviceResultText, _ = fwupdate.Reason(j.DeviceResult)
	}
	return out
}

func newTransitionJSON(t fwupdate.Transition) transitionJSON {
	return transitionJSON{Seq: t.Seq, From: string(t.From), To: string(t.To), At: t.At, Reason: t.Reason,
		DeviceState: known(t.DeviceState), DeviceResult: known(t.DeviceResult), Attempt: t.Attempt}
}

// endpointBody reads a request to a /devices/{endpoint}/... route that takes a body: it returns
// the endpoint name and decodes the JSON body strictly into v.
func endpointBody(c echo.Context, v any) (string, error) {
	ep, err := endpointParam(c)
	if err != nil {
		return "", err
	}
	body, err := readBody(c)
	if err != nil {
		return "", err
	}
	return ep, decodeStrict(body, v)
}

// startUpdate: POST /devices/{endpoint}/updates {"image_id":..., "method":..., "policy":{...}}
func (a *API) startUpdate(c echo.Context) error {
	u, err := a.updater()
	if err != nil {
		return err
	}
	var in startUpdateBody
	ep, err := endpointBody(c, &in)
	if err != nil {
		return err
	}
	req := fwupdate.StartRequest{ImageID: strings.TrimSpace(in.ImageID), Method: in.Method}
	if req.ImageID == "" {
		return badRequest(codeInvalidRequest, "image_id is missing")
	}
	switch req.Method {
	case "":
		req.Method = fwupdate.MethodAuto
	case fwupdate.MethodPull, fwupdate.MethodPush, fwupdate.MethodAuto:
	default:
		return badRequest(codeInvalidRequest, "method must be pull, push or auto, not %q", in.Method)
	}
	if in.Policy != nil {
		p, err := in.Policy.policy()
		if err != nil {
			return err
		}
		req.Policy = &p
	}
	if err := a.checkUpdateTarget(c, ep, req.ImageID, in.Force); err != nil {
		return err
	}
	j, err := u.Start(c.Request().Context(), ep, req)
	if err != nil {
		return mapUpdateError("device "+ep, ep, req.ImageID, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, jobURL(j))
	return c.JSON(http.StatusAccepted, newJobJSON(j))
}

// listUpdates: GET /devices/{endpoint}/updates?limit=, newest first.
func (a *API) listUpdates(c echo.Context) error {
	u, err := a.updater()
	if err != nil {
		return err
	}
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	limit := defaultUpdateLimit
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return badRequest(codeInvalidQuery, "limit must be a positive integer, not %q", s)
		}
		limit = min(n, maxUpdateLimit)
	}
	jobs, err := u.Jobs(c.Request().Context(), ep, limit)
	if err != nil {
		return mapUpdateError("device "+ep, ep, "", err)
	}
	out := jobList{Updates: make([]jobJSON, 0, min(len(jobs), limit))}
	for _, j := range jobs {
		if j.Endpoint == ep && len(out.Updates) < limit {
			out.Updates = append(out.Updates, newJobJSON(j))
		}
	}
	return c.JSON(http.StatusOK, out)
}

// deviceJob is the route's job, provided it belongs to the route's endpoint: another device's job is
// as unknown as a job that does not exist.
func deviceJob(c echo.Context, u Updates) (*fwupdate.Job, string, error) {
	ep, err := endpointParam(c)
	if err != nil {
		return nil, "", err
	}
	id, err := idParam(c, "update")
	if err != nil {
		return nil, "", err
	}
	j, err := u.Job(c.Request().Context(), id)
	if err == nil && j.Endpoint != ep {
		err = fwupdate.ErrJobNotFound
	}
	if err != nil {
		return nil, "", mapUpdateError(jobSubject(ep, id), ep, "", err)
	}
	return j, ep, nil
}

func jobSubject(ep, id string) string { return "update " + id + " of device " + ep }

// getUpdate: GET /devices/{endpoint}/updates/{id}, the job and its history.
func (a *API) getUpdate(c echo.Context) error {
	u, err := a.updater()
	if err != nil {
		return err
	}
	j, ep, err := deviceJob(c, u)
	if err != nil {
		return err
	}
	hist, err := u.History(c.Request().Context(), j.ID)
	if err != nil {
		return mapUpdateError(jobSubject(ep, j.ID), ep, "", err)
	}
	out := jobDetailJSON{jobJSON: newJobJSON(j), History: make([]transitionJSON, 0, len(hist))}
	for _, t := range hist {
		out.History = append(out.History, newTransitionJSON(t))
	}
	return c.JSON(http.StatusOK, out)
}

// cancelUpdate: POST /devices/{endpoint}/updates/{id}/cancel, body optional: {"reason":...}
func (a *API) cancelUpdate(c echo.Context) error {
	u, err := a.updater()
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in cancelUpdateBody
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			return err
		}
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if len(in.Reason) > maxCancelReason {
		return badRequest(codeInvalidRequest, "reason is longer than %d bytes", maxCancelReason)
	}
	j, ep, err := deviceJob(c, u)
	if err != nil {
		return err
	}
	id := j.ID
	if j, err = u.Cancel(c.Request().Context(), id, in.Reason); err != nil {
		return mapUpdateError(jobSubject(ep, id), ep, "", err)
	}
	return c.JSON(http.StatusOK, newJobJSON(j))
}

// mapUpdateError turns a driver error into its HTTP form; see the table in README.md. subject names
// the job or the device, ep the device, image the image a start named.
func mapUpdateError(subject, ep, image string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	mk := func(status int, code, msg string) *apiError {
		return &apiError{Status: status, Code: code, Message: msg, Err: err}
	}
	switch {
	case errors.Is(err, fwupdate.ErrInvalidRequest):
		return mk(http.StatusBadRequest, codeInvalidRequest, updateMessage(err))
	case errors.Is(err, fwupdate.ErrImageNotFound):
		return mk(http.StatusUnprocessableEntity, codeImageNotFound, fmt.Sprintf("image %s does not exist", image))
	case errors.Is(err, fwupdate.ErrDeviceNotFound):
		return mk(http.StatusNotFound, codeNotFound, fmt.Sprintf("device %s has never registered", ep))
	case errors.Is(err, fwupdate.ErrJobNotFound):
		return mk(http.StatusNotFound, codeNotFound, subject+" does not exist")
	case errors.Is(err, fwupdate.ErrActiveJob):
		return mk(http.StatusConflict, codeActiveJob,
			fmt.Sprintf("device %s already has an update in progress; cancel it or wait for it to end", ep))
	case errors.Is(err, fwupdate.ErrInvalidTransition):
		return mk(http.StatusConflict, codeJobEnded, subject+" has already ended")
	case errors.Is(err, fwupdate.ErrNotRunning):
		return mk(http.StatusServiceUnavailable, codeUnavailable, "firmware updates are starting or shutting down; try again")
	}
	return mapError(subject, err)
}

// updateMessage is the driver's error text without our package prefixes.
func updateMessage(err error) string {
	return strings.ReplaceAll(err.Error(), "fwupdate: ", "")
}
