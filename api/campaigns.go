package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/campaigns"
	"github.com/lwota/lwota/campaigns/plan"
)

// Campaigns creates, drives and reports firmware campaigns (*campaigns.Manager implements it).
type Campaigns interface {
	// DryRun validates spec and returns what it would select: *campaigns.InvalidError.
	DryRun(ctx context.Context, spec campaigns.Spec) (*campaigns.Selection, error)
	// CreateCounted stores a campaign, started when spec.Start, and returns it with the summary
	// of its members as stored: *campaigns.InvalidError, *campaigns.ConflictError.
	// It does not wake the tick: the handler calls Wake once the answer is written.
	CreateCounted(ctx context.Context, spec campaigns.Spec, actor string) (*campaigns.Campaign, campaigns.MemberSummary, error)
	// Wake asks for a tick soon: a started campaign's first updates.
	Wake()
	// Get returns one campaign, or campaigns.ErrNotFound.
	Get(ctx context.Context, id string) (*campaigns.Campaign, error)
	// List returns the campaigns in one of states (all when none), newest first.
	List(ctx context.Context, states ...campaigns.State) ([]*campaigns.Campaign, error)
	// Members returns a campaign's devices matching f (by endpoint when f pages).
	Members(ctx context.Context, id string, f campaigns.MemberFilter) ([]campaigns.Member, error)
	// MemberSummary counts a campaign's devices per wave and state, and the failed ones per reason.
	MemberSummary(ctx context.Context, c *campaigns.Campaign) (campaigns.MemberSummary, error)
	// History returns a campaign's events (who did what, when and why), oldest first.
	History(ctx context.Context, id string) ([]campaigns.Event, error)
	// Preview counts what a selector picks, creating nothing: *campaigns.InvalidError.
	Preview(ctx context.Context, query string, endpoints []string, imageID string) (*campaigns.Preview, error)

	// The actions fail with campaigns.ErrInvalidTransition when the state does not allow them.
	Start(ctx context.Context, id, actor string) (*campaigns.Campaign, error)
	Pause(ctx context.Context, id, actor, reason string) (*campaigns.Campaign, error)
	Resume(ctx context.Context, id, actor string, opts campaigns.ResumeOptions) (*campaigns.Campaign, error)
	Abort(ctx context.Context, id, actor, reason string, hard bool) (*campaigns.Campaign, error)
	Approve(ctx context.Context, id, actor string) (*campaigns.Campaign, error)
	Retry(ctx context.Context, id, actor string) (*campaigns.Campaign, error)
}

const campaignsPath = Prefix + "/campaigns"

// Limits of the campaign routes.
const (
	maxCampaignReason  = 1024                   // bytes of a pause or abort reason, kept in the history
	dryRunEndpoints    = 1000                   // endpoints a dry run lists
	campaignPoll       = 500 * time.Millisecond // how often an event stream looks at its campaign
	campaignPollFailed = 5 * time.Second        // and after the manager failed
)

// WithCampaigns serves the campaign routes under /campaigns over m. Without it these routes
// answer 404.
func (a *API) WithCampaigns(m Campaigns) *API {
	a.campaigns = m
	return a
}

func (a *API) campaignRoutes(e *echo.Echo) {
	e.POST(campaignsPath, a.createCampaign)
	e.GET(campaignsPath, a.listCampaigns)
	e.GET(campaignsPath+"/preview", a.previewCampaign) // before /:id: campaign ids start with cmp_
	e.GET(campaignsPath+"/:id/history", a.campaignHistory)
	e.GET(campaignsPath+"/:id", a.getCampaign)
	e.GET(campaignsPath+"/:id/devices", a.campaignDevices)
	e.GET(campaignsPath+"/:id/events", a.streamCampaign)
	for _, act := range campaignActions {
		e.POST(campaignsPath+"/:id/"+act.name, a.campaignAction(act))
	}
}

func (a *API) campaignManager() (Campaigns, error) {
	if a.campaigns == nil {
		return nil, notFound("this server runs no campaigns")
	}
	return a.campaigns, nil
}

// campaignParam is the manager and the campaign id of a /campaigns/{id} route.
func (a *API) campaignParam(c echo.Context) (Campaigns, string, error) {
	m, err := a.campaignManager()
	if err != nil {
		return nil, "", err
	}
	id, err := idParam(c, "campaign")
	if err != nil {
		return nil, "", err
	}
	return m, id, nil
}

// loadCampaign reads the campaign of a /campaigns/{id} route with its progress now; its errors
// are in their HTTP form.
func (a *API) loadCampaign(c echo.Context) (Campaigns, *campaigns.Campaign, campaignJSON, campaigns.Progress, error) {
	m, id, err := a.campaignParam(c)
	if err != nil {
		return nil, nil, campaignJSON{}, campaigns.Progress{}, err
	}
	cmp, view, prog, err := a.look(c.Request().Context(), m, id)
	if err != nil {
		return nil, nil, campaignJSON{}, campaigns.Progress{}, mapCampaignError("campaign "+id, err)
	}
	return m, cmp, view, prog, nil
}

// actor names the caller in a campaign's history: the API token's name.
func actor(c echo.Context) string {
	if t := principal(c); t != nil {
		return t.Name
	}
	return "api"
}

// ---- JSON shapes ---------------------------------------------------------------------------

// campaignSpecJSON is what an operator chooses of a campaign: the create body, and the same
// fields in every campaign answer. Durations are Go duration strings ("10m"), times RFC 3339.
// Optional parts are absent from answers when they are off.
type campaignSpecJSON struct {
	Name              string         `json:"name"`
	ImageID           string         `json:"image_id"`
	Selector          selectorJSON   `json:"selector"`
	Method            string         `json:"method,omitempty"`
	Policy            *policyJSON    `json:"policy,omitempty"`
	Waves             []waveJSON     `json:"waves"`
	SpreadBy          string         `json:"spread_by,omitempty"`
	FailureThreshold  *thresholdJSON `json:"failure_threshold,omitempty"`
	OverallThreshold  *thresholdJSON `json:"overall_threshold,omitempty"`
	Pacing            *pacingJSON    `json:"pacing,omitempty"`
	Retries           *retriesJSON   `json:"retries,omitempty"`
	Schedule          *scheduleJSON  `json:"schedule,omitempty"`
	DynamicMembership bool           `json:"dynamic_membership"`
}

// createCampaignBody is the body of POST /campaigns.
type createCampaignBody struct {
	campaignSpecJSON
	Start  bool `json:"start"`   // start it at once (or at schedule.start_at)
	DryRun bool `json:"dry_run"` // only say what it would select
}

type selectorJSON struct {
	Query     string   `json:"query,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
}

type waveJSON struct {
	Percent   float64        `json:"percent,omitempty"`
	Count     int            `json:"count,omitempty"`
	Gate      *gateJSON      `json:"gate,omitempty"`
	Soak      string         `json:"soak,omitempty"`
	Threshold *thresholdJSON `json:"threshold,omitempty"` // this wave's own failure threshold
}

type gateJSON struct {
	SuccessPercent float64 `json:"success_percent"`
	Manual         bool    `json:"manual"`
}

type thresholdJSON struct {
	Percent    float64 `json:"percent"`
	MinDevices int     `json:"min_devices"`
	Count      int     `json:"count"`
	Action     string  `json:"action"`
}

type pacingJSON struct {
	MaxConcurrent      int           `json:"max_concurrent"`
	MaxStartsPerMinute int           `json:"max_starts_per_minute"`
	Ramp               *rampJSON     `json:"ramp,omitempty"`
	PerLabelCap        *labelCapJSON `json:"per_label_cap,omitempty"`
}

type rampJSON struct {
	Base   float64 `json:"base"`
	Factor float64 `json:"factor"`
	Every  int     `json:"every"`
}

type labelCapJSON struct {
	Key string `json:"key"`
	Max int    `json:"max"`
}

type retriesJSON struct {
	InProgressTimeout string `json:"in_progress_timeout,omitempty"`
	Retryable         int    `json:"retryable"`
	Terminal          int    `json:"terminal"`
}

type scheduleJSON struct {
	StartAt   string       `json:"start_at,omitempty"`
	EndAt     string       `json:"end_at,omitempty"`
	EndAction string       `json:"end_action,omitempty"`
	Windows   []windowJSON `json:"windows,omitempty"`
}

type windowJSON struct {
	Cron     string `json:"cron"`
	Duration string `json:"duration"`
	TimeZone string `json:"time_zone,omitempty"`
}

// campaignJSON is a campaign as the API shows it, with its progress.
type campaignJSON struct {
	ID string `json:"id"`
	campaignSpecJSON
	ImageVersion   string       `json:"image_version"`
	State          string       `json:"state"`
	Reason         string       `json:"reason"`
	ResumeEffect   string       `json:"resume_effect,omitempty"` // paused only: what resume would do now
	Wave           int          `json:"wave"`                    // 1-based; 0 before the campaign started
	CreatedBy      string       `json:"created_by"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
	StartedAt      time.Time    `json:"started_at,omitzero"`
	EndedAt        time.Time    `json:"ended_at,omitzero"`
	Progress       progressJSON `json:"progress"`
	FailureReasons []reasonJSON `json:"failure_reasons"`
	Links          links        `json:"links"`
}

type countsJSON struct {
	Pending    int `json:"pending"`
	InProgress int `json:"in_progress"`
	Succeeded  int `json:"succeeded"`
	UpToDate   int `json:"already_up_to_date"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
}

type progressJSON struct {
	Total               int                `json:"total"`
	Counts              countsJSON         `json:"counts"`
	Waves               []waveProgressJSON `json:"waves"`
	SuccessRate         float64            `json:"success_rate"`
	FailureRate         float64            `json:"failure_rate"`
	ThroughputPerMinute float64            `json:"throughput_per_minute"`
	ETA                 time.Time          `json:"eta,omitzero"`
}

type waveProgressJSON struct {
	Wave       int        `json:"wave"` // 1-based
	Size       int        `json:"size"`
	Counts     countsJSON `json:"counts"`
	Gate       string     `json:"gate,omitempty"` // absent before the wave started
	GateReason string     `json:"gate_reason,omitempty"`
	StartedAt  time.Time  `json:"started_at,omitzero"`
}

type reasonJSON struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

type campaignList struct {
	Campaigns []campaignJSON `json:"campaigns"`
}

// dryRunJSON answers a create with dry_run: what the campaign would select.
type dryRunJSON struct {
	Devices   int            `json:"devices"`
	Endpoints []string       `json:"endpoints"` // the first dryRunEndpoints, in wave order
	Waves     []waveSizeJSON `json:"waves"`
}

type waveSizeJSON struct {
	Wave int `json:"wave"`
	Size int `json:"size"`
}

// campaignDeviceJSON is one device of a campaign.
type campaignDeviceJSON struct {
	Endpoint  string    `json:"endpoint"`
	Wave      int       `json:"wave"` // 1-based
	State     string    `json:"state"`
	JobID     string    `json:"job_id,omitempty"`
	JobState  string    `json:"job_state,omitempty"`
	Reason    string    `json:"reason"`
	Attempts  int       `json:"attempts"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

type campaignDeviceList struct {
	Devices []campaignDeviceJSON `json:"devices"`
	Next    string               `json:"next"` // the after= of the next page; "" on the last
}

// campaignStateJSON is the data of an SSE `state` event.
type campaignStateJSON struct {
	ID     string    `json:"id"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// campaignRefusal is the error body of a refused campaign: the usual shape plus the problems.
type campaignRefusal struct {
	Error campaignRefusalDetail `json:"error"`
}

type campaignRefusalDetail struct {
	Code    string              `json:"code"`
	Message string              `json:"message"`
	Details []campaigns.Problem `json:"details"`
}

// ---- JSON -> domain --------------------------------------------------------------------------

// problems collects what is wrong with a body before the manager sees it.
type problems []campaigns.Problem

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, campaigns.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) duration(field, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.add(field, "%q is not a duration such as \"90s\", \"10m\" or \"1h30m\"", s)
	}
	return d
}

func (p *problems) time(field, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		p.add(field, "%q is not an RFC 3339 time such as \"2026-03-01T02:00:00Z\"", s)
	}
	return t
}

func (in *thresholdJSON) threshold() plan.FailureThreshold {
	if in == nil {
		return plan.FailureThreshold{}
	}
	return plan.FailureThreshold{Percent: in.Percent, MinDevices: in.MinDevices, Count: in.Count, Action: plan.Action(in.Action)}
}

// spec turns a create body into the manager's Spec; problems of form (durations, times, the
// policy) come back as a list, the manager checks the rest.
func (in *campaignSpecJSON) spec() (campaigns.Spec, problems) {
	var ps problems
	s := campaigns.Spec{Name: strings.TrimSpace(in.Name), ImageID: strings.TrimSpace(in.ImageID),
		Query: in.Selector.Query, Endpoints: in.Selector.Endpoints, Method: in.Method}
	if in.Policy != nil {
		p, err := in.Policy.policy()
		var ae *apiError
		if errors.As(err, &ae) {
			ps.add("policy", "%s", ae.Message)
		}
		s.Policy = &p
	}
	p := plan.Plan{SpreadBy: in.SpreadBy, WaveThreshold: in.FailureThreshold.threshold(),
		OverallThreshold: in.OverallThreshold.threshold(), DynamicMembership: in.DynamicMembership}
	for i, w := range in.Waves {
		pw := plan.Wave{Percent: w.Percent, Count: w.Count, Soak: ps.duration(fmt.Sprintf("waves[%d].soak", i), w.Soak)}
		if w.Gate != nil {
			pw.Gate = plan.Gate{SuccessPercent: w.Gate.SuccessPercent, Manual: w.Gate.Manual}
		}
		if w.Threshold != nil {
			t := w.Threshold.threshold()
			pw.Threshold = &t
		}
		p.Waves = append(p.Waves, pw)
	}
	if pc := in.Pacing; pc != nil {
		p.Pacing = plan.Pacing{MaxConcurrent: pc.MaxConcurrent, MaxStartsPerMinute: pc.MaxStartsPerMinute}
		if pc.Ramp != nil {
			p.Pacing.Ramp = plan.Ramp{Base: pc.Ramp.Base, Factor: pc.Ramp.Factor, Every: pc.Ramp.Every}
		}
		if pc.PerLabelCap != nil {
			p.Pacing.PerLabelCap = plan.LabelCap{Key: pc.PerLabelCap.Key, Max: pc.PerLabelCap.Max}
		}
	}
	if r := in.Retries; r != nil {
		p.Retries = plan.Retries{InProgressTimeout: ps.duration("retries.in_progress_timeout", r.InProgressTimeout),
			Retryable: r.Retryable, Terminal: r.Terminal}
	}
	if sc := in.Schedule; sc != nil {
		p.Schedule = plan.Schedule{StartAt: ps.time("schedule.start_at", sc.StartAt), EndAt: ps.time("schedule.end_at", sc.EndAt),
			EndAction: plan.EndAction(sc.EndAction)}
		for i, w := range sc.Windows {
			p.Schedule.Windows = append(p.Schedule.Windows, plan.Window{Cron: w.Cron, TimeZone: w.TimeZone,
				Duration: ps.duration(fmt.Sprintf("schedule.windows[%d].duration", i), w.Duration)})
		}
	}
	s.Plan = p
	return s, ps
}

// ---- domain -> JSON --------------------------------------------------------------------------

func newThresholdJSON(t plan.FailureThreshold) *thresholdJSON {
	if t == (plan.FailureThreshold{}) {
		return nil
	}
	return &thresholdJSON{Percent: t.Percent, MinDevices: t.MinDevices, Count: t.Count, Action: string(t.Action)}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func newSpecJSON(c *campaigns.Campaign) campaignSpecJSON {
	p := c.Plan
	out := campaignSpecJSON{
		Name: c.Name, ImageID: c.ImageID, Selector: selectorJSON{Query: c.Query, Endpoints: c.Endpoints},
		Method: c.Method, Waves: make([]waveJSON, len(p.Waves)), SpreadBy: p.SpreadBy,
		FailureThreshold: newThresholdJSON(p.WaveThreshold), OverallThreshold: newThresholdJSON(p.OverallThreshold),
		DynamicMembership: p.DynamicMembership,
	}
	if c.Policy != nil {
		pj := newPolicyJSON(*c.Policy)
		out.Policy = &pj
	}
	for i, w := range p.Waves {
		wj := waveJSON{Percent: w.Percent, Count: w.Count}
		if w.Gate != (plan.Gate{}) {
			wj.Gate = &gateJSON{SuccessPercent: w.Gate.SuccessPercent, Manual: w.Gate.Manual}
		}
		if w.Soak > 0 {
			wj.Soak = formatDuration(w.Soak)
		}
		if w.Threshold != nil {
			wj.Threshold = newThresholdJSON(*w.Threshold)
			if wj.Threshold == nil {
				wj.Threshold = &thresholdJSON{} // an explicit "off" for this wave
			}
		}
		out.Waves[i] = wj
	}
	if pc := p.Pacing; pc != (plan.Pacing{}) {
		out.Pacing = &pacingJSON{MaxConcurrent: pc.MaxConcurrent, MaxStartsPerMinute: pc.MaxStartsPerMinute}
		if pc.Ramp != (plan.Ramp{}) {
			out.Pacing.Ramp = &rampJSON{Base: pc.Ramp.Base, Factor: pc.Ramp.Factor, Every: pc.Ramp.Every}
		}
		if pc.PerLabelCap != (plan.LabelCap{}) {
			out.Pacing.PerLabelCap = &labelCapJSON{Key: pc.PerLabelCap.Key, Max: pc.PerLabelCap.Max}
		}
	}
	if r := p.Retries; r != (plan.Retries{}) {
		out.Retries = &retriesJSON{Retryable: r.Retryable, Terminal: r.Terminal}
		if r.InProgressTimeout > 0 {
			out.Retries.InProgressTimeout = formatDuration(r.InProgressTimeout)
		}
	}
	if sc := p.Schedule; !sc.StartAt.IsZero() || !sc.EndAt.IsZero() || sc.EndAction != "" || len(sc.Windows) > 0 {
		out.Schedule = &scheduleJSON{StartAt: formatTime(sc.StartAt), EndAt: formatTime(sc.EndAt), EndAction: string(sc.EndAction)}
		for _, w := range sc.Windows {
			out.Schedule.Windows = append(out.Schedule.Windows, windowJSON{Cron: w.Cron, Duration: formatDuration(w.Duration), TimeZone: w.TimeZone})
		}
	}
	return out
}

func newCountsJSON(c plan.Counts) countsJSON {
	return countsJSON{Pending: c.Pending, InProgress: c.InProgress, Succeeded: c.Succeeded, UpToDate: c.UpToDate,
		Failed: c.Failed, Cancelled: c.Cancelled}
}

func campaignURL(id string) string { return campaignsPath + "/" + url.PathEscape(id) }

func newCampaignJSON(c *campaigns.Campaign, p campaigns.Progress) campaignJSON {
	out := campaignJSON{
		ID: c.ID, campaignSpecJSON: newSpecJSON(c), ImageVersion: c.ImageVersion, State: string(c.State), Reason: c.Reason,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, StartedAt: c.StartedAt, EndedAt: c.EndedAt,
		Progress: progressJSON{Total: p.Total, Counts: newCountsJSON(p.Counts), Waves: make([]waveProgressJSON, len(p.Waves)),
			SuccessRate: p.SuccessRate, FailureRate: p.FailureRate, ThroughputPerMinute: p.ThroughputPerMinute, ETA: p.ETA},
		FailureReasons: make([]reasonJSON, len(p.FailureReasons)),
		Links:          links{Self: campaignURL(c.ID)},
	}
	if len(c.WaveStarted) > 0 {
		out.Wave = c.Wave + 1
	}
	for i, w := range p.Waves {
		out.Progress.Waves[i] = waveProgressJSON{Wave: i + 1, Size: w.Counts.Total(), Counts: newCountsJSON(w.Counts),
			Gate: string(w.Gate), GateReason: w.GateReason, StartedAt: w.StartedAt}
	}
	for i, r := range p.FailureReasons {
		out.FailureReasons[i] = reasonJSON{Reason: r.Reason, Count: r.Count}
	}
	return out
}

func newCampaignDeviceJSON(m campaigns.Member) campaignDeviceJSON {
	return campaignDeviceJSON{Endpoint: m.Endpoint, Wave: m.Wave + 1, State: string(m.State), JobID: m.JobID,
		JobState: string(m.JobState), Reason: m.Reason, Attempts: m.Attempts, StartedAt: m.StartedAt, EndedAt: m.EndedAt}
}

// view is a campaign with its progress now, from its members' counts (not the members).
func (a *API) view(ctx context.Context, m Campaigns, c *campaigns.Campaign) (campaignJSON, campaigns.Progress, error) {
	// Counts, not members: a campaign of 10,000 devices answers in the time of two GROUP BYs.
	sum, err := m.MemberSummary(ctx, c)
	if err != nil {
		return campaignJSON{}, campaigns.Progress{}, err
	}
	out, p := a.viewFrom(c, sum)
	return out, p, nil
}

// viewFrom is view from a summary already at hand.
func (a *API) viewFrom(c *campaigns.Campaign, sum campaigns.MemberSummary) (campaignJSON, campaigns.Progress) {
	now := a.cfg.Now()
	p := campaigns.ProgressFrom(c, sum, now)
	out := newCampaignJSON(c, p)
	out.ResumeEffect = campaigns.ResumeEffectFrom(c, sum, now)
	return out, p
}

// ---- errors ----------------------------------------------------------------------------------

// campaignError answers err: a refused campaign with its problems (422), anything else through
// mapCampaignError.
func (a *API) campaignError(c echo.Context, subject string, err error) error {
	var ie *campaigns.InvalidError
	if !errors.As(err, &ie) {
		return mapCampaignError(subject, err)
	}
	return refuseCampaign(c, ie.Problems)
}

// refuseCampaign answers 422 invalid_campaign, naming each field that is wrong.
func refuseCampaign(c echo.Context, ps []campaigns.Problem) error {
	details := make([]campaigns.Problem, len(ps))
	parts := make([]string, len(ps))
	for i, p := range ps {
		// The plan names the per-wave threshold after its Go field; the API calls it failure_threshold.
		if rest, ok := strings.CutPrefix(p.Field, "wave_threshold"); ok {
			p.Field = "failure_threshold" + rest
		}
		details[i] = p
		parts[i] = p.Field + ": " + p.Message
	}
	c.Set(errorCodeKey, codeInvalidCampaign) // for the audit entry
	return c.JSON(http.StatusUnprocessableEntity, campaignRefusal{Error: campaignRefusalDetail{
		Code: codeInvalidCampaign, Message: "invalid campaign: " + strings.Join(parts, "; "), Details: details}})
}

// mapCampaignError turns a manager error into its HTTP form. subject names the campaign.
func mapCampaignError(subject string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := strings.ReplaceAll(err.Error(), "campaigns: ", "")
	var ce *campaigns.ConflictError
	switch {
	case errors.As(err, &ce):
		return &apiError{Status: http.StatusConflict, Code: codeDeviceConflict, Message: strings.ReplaceAll(ce.Error(), "campaigns: ", ""), Err: err}
	case errors.Is(err, campaigns.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: subject + " does not exist", Err: err}
	case errors.Is(err, campaigns.ErrInvalidTransition):
		return &apiError{Status: http.StatusConflict, Code: codeInvalidTransition, Message: msg, Err: err}
	case errors.Is(err, campaigns.ErrStale), errors.Is(err, campaigns.ErrNotRunning):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: subject + " is busy; try again", Err: err}
	}
	return mapError(subject, err)
}

// ---- handlers --------------------------------------------------------------------------------

// createCampaign: POST /campaigns, or with dry_run what it would select.
func (a *API) createCampaign(c echo.Context) error {
	m, err := a.campaignManager()
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in createCampaignBody
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	spec, ps := in.spec()
	if len(ps) > 0 {
		return refuseCampaign(c, ps)
	}
	spec.Start = in.Start
	ctx := c.Request().Context()
	if in.DryRun {
		sel, err := m.DryRun(ctx, spec)
		if err != nil {
			return a.campaignError(c, "campaign", err)
		}
		out := dryRunJSON{Devices: len(sel.Devices), Endpoints: []string{}, Waves: make([]waveSizeJSON, len(sel.Waves))}
		for i, w := range sel.Waves {
			out.Waves[i] = waveSizeJSON{Wave: i + 1, Size: len(w)}
			out.Endpoints = append(out.Endpoints, w[:min(len(w), dryRunEndpoints-len(out.Endpoints))]...)
		}
		return c.JSON(http.StatusOK, out)
	}
	cmp, sum, err := m.CreateCounted(ctx, spec, actor(c))
	if err != nil {
		return a.campaignError(c, "campaign", err)
	}
	auditNote(c, "campaign", cmp.ID)
	// The campaign as created: its members' counts from what the creating write stored, not
	// read back (a start over 10,000 devices answers without two GROUP BYs over their rows).
	out, _ := a.viewFrom(cmp, sum)
	c.Response().Header().Set(echo.HeaderLocation, campaignURL(cmp.ID))
	err = c.JSON(http.StatusCreated, out)
	if spec.Start {
		// The answer first, then the tick that starts the updates of (up to) 10,000 devices.
		c.Response().Flush()
		m.Wake()
	}
	return err
}

// listCampaigns: GET /campaigns?state=running,paused, newest first.
func (a *API) listCampaigns(c echo.Context) error {
	m, err := a.campaignManager()
	if err != nil {
		return err
	}
	var states []campaigns.State
	for _, s := range c.QueryParams()["state"] {
		for _, part := range strings.Split(s, ",") {
			st := campaigns.State(strings.TrimSpace(part))
			if !st.Valid() {
				return badRequest(codeInvalidQuery, "state %q is not one of %v", part, campaigns.States)
			}
			states = append(states, st)
		}
	}
	ctx := c.Request().Context()
	list, err := m.List(ctx, states...)
	if err != nil {
		return mapCampaignError("campaigns", err)
	}
	out := campaignList{Campaigns: make([]campaignJSON, 0, len(list))}
	for _, cmp := range list {
		v, _, err := a.view(ctx, m, cmp)
		if errors.Is(err, campaigns.ErrNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return mapCampaignError("campaign "+cmp.ID, err)
		}
		out.Campaigns = append(out.Campaigns, v)
	}
	return c.JSON(http.StatusOK, out)
}

// getCampaign: GET /campaigns/{id} with its progress.
func (a *API) getCampaign(c echo.Context) error {
	_, _, out, _, err := a.loadCampaign(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// campaignDevices: GET /campaigns/{id}/devices?state=&limit=&after=, by endpoint.
func (a *API) campaignDevices(c echo.Context) error {
	m, id, err := a.campaignParam(c)
	if err != nil {
		return err
	}
	f := campaigns.MemberFilter{State: campaigns.MemberState(c.QueryParam("state")), Limit: a.cfg.DefaultPageSize}
	if f.State != "" && !f.State.Valid() {
		return badRequest(codeInvalidQuery, "state %q is not one of %v", f.State, campaigns.MemberStates)
	}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return badRequest(codeInvalidQuery, "limit must be a positive integer, not %q", s)
		}
		f.Limit = min(n, a.cfg.MaxPageSize)
	}
	if s := c.QueryParam("after"); s != "" {
		after, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(after) == 0 {
			return badRequest(codeInvalidQuery, "after %q is not a cursor this server gave out", s)
		}
		f.After = string(after)
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	members, err := m.Members(c.Request().Context(), id, f)
	if err != nil {
		return mapCampaignError("campaign "+id, err)
	}
	out := campaignDeviceList{Devices: make([]campaignDeviceJSON, 0, min(len(members), limit))}
	for _, mem := range members[:min(len(members), limit)] {
		out.Devices = append(out.Devices, newCampaignDeviceJSON(mem))
	}
	if len(members) > limit {
		out.Next = cursor(members[limit-1].Endpoint)
	}
	return c.JSON(http.StatusOK, out)
}

// campaignActionDef is one action route: POST /campaigns/{id}/{name}.
type campaignActionDef struct {
	name string
	// run decodes the (optional) body and acts; a body error is an *apiError.
	run func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error)
}

type reasonBody struct {
	Reason string `json:"reason"`
}

type abortBody struct {
	Reason string `json:"reason"`
	Mode   string `json:"mode"` // soft (default): updates in flight finish; hard: they are cancelled
}

type resumeBody struct {
	FailureThreshold *thresholdJSON `json:"failure_threshold"`
	OverallThreshold *thresholdJSON `json:"overall_threshold"`
}

// decodeOptional decodes body into v unless it is empty: the action bodies are optional.
func decodeOptional(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	return decodeStrict(body, v)
}

func checkReason(r string) (string, error) {
	r = strings.TrimSpace(r)
	if len(r) > maxCampaignReason {
		return "", badRequest(codeInvalidRequest, "reason is longer than %d bytes", maxCampaignReason)
	}
	return r, nil
}

// noBody is the body of the actions that take none: {} or nothing.
func noBody(body []byte) error { return decodeOptional(body, &struct{}{}) }

var campaignActions = []campaignActionDef{
	{"start", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		return m.Start(ctx, id, actor)
	}},
	{"pause", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		var in reasonBody
		if err := decodeOptional(body, &in); err != nil {
			return nil, err
		}
		r, err := checkReason(in.Reason)
		if err != nil {
			return nil, err
		}
		return m.Pause(ctx, id, actor, r)
	}},
	{"resume", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		var in resumeBody
		if err := decodeOptional(body, &in); err != nil {
			return nil, err
		}
		var opts campaigns.ResumeOptions
		if in.FailureThreshold != nil {
			t := in.FailureThreshold.threshold()
			opts.WaveThreshold = &t
		}
		if in.OverallThreshold != nil {
			t := in.OverallThreshold.threshold()
			opts.OverallThreshold = &t
		}
		return m.Resume(ctx, id, actor, opts)
	}},
	{"abort", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		var in abortBody
		if err := decodeOptional(body, &in); err != nil {
			return nil, err
		}
		r, err := checkReason(in.Reason)
		if err != nil {
			return nil, err
		}
		switch in.Mode {
		case "", "soft":
			return m.Abort(ctx, id, actor, r, false)
		case "hard":
			return m.Abort(ctx, id, actor, r, true)
		}
		return nil, badRequest(codeInvalidRequest, "mode must be soft or hard, not %q", in.Mode)
	}},
	{"approve", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		return m.Approve(ctx, id, actor)
	}},
	{"retry", func(ctx context.Context, m Campaigns, id, actor string, body []byte) (*campaigns.Campaign, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		return m.Retry(ctx, id, actor)
	}},
}

// campaignAction serves POST /campaigns/{id}/{action}: 200 with the campaign as it now is.
func (a *API) campaignAction(act campaignActionDef) echo.HandlerFunc {
	return func(c echo.Context) error {
		m, id, err := a.campaignParam(c)
		if err != nil {
			return err
		}
		body, err := readBody(c)
		if err != nil {
			return err
		}
		auditNote(c, "campaign", id)
		ctx := c.Request().Context()
		cmp, err := act.run(ctx, m, id, actor(c), body)
		if err != nil {
			return a.campaignError(c, "campaign "+id, err)
		}
		out, _, err := a.view(ctx, m, cmp)
		if err != nil {
			return mapCampaignError("campaign "+id, err)
		}
		return c.JSON(http.StatusOK, out)
	}
}

// streamCampaign: GET /campaigns/{id}/events. It looks at the campaign every campaignPoll and
// sends `event: progress` (the campaign as GET answers it) when its version or its counts
// changed, and first at once; `event: state` precedes it on a lifecycle transition. Comment
// lines keep idle proxies open. The stream ends when the client leaves or the campaign is gone.
func (a *API) streamCampaign(c echo.Context) error {
	m, cmp, view, prog, err := a.loadCampaign(c)
	if err != nil {
		return err
	}
	ctx, id := c.Request().Context(), cmp.ID

	w := c.Response()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{}) // a stream outlives WriteTimeout
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := writeSSE(w, "progress", view); err != nil {
		return nil
	}
	w.Flush()

	poll := time.NewTicker(campaignPoll)
	defer poll.Stop()
	keep := time.NewTicker(a.cfg.KeepAlive)
	defer keep.Stop()
	last, lastWaves := cmp, waveCounts(prog)
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-keep.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
		case <-poll.C:
			next, nextView, nextProg, gerr := a.look(ctx, m, id)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(gerr, campaigns.ErrNotFound):
				return nil
			case gerr != nil:
				// Keep the client; look again later. The comment tells a curious client why it waits.
				a.logger.Warn("campaign event stream", "campaign", id, "err", gerr)
				_, err = fmt.Fprintf(w, ": campaign unavailable: %s\n\n", sanitizeLine(mapCampaignError("campaign "+id, gerr).Message))
				poll.Reset(campaignPollFailed)
			default:
				poll.Reset(campaignPoll)
				if next.State != last.State {
					err = writeSSE(w, "state", campaignStateJSON{ID: id, From: string(last.State), To: string(next.State),
						Reason: next.Reason, At: next.UpdatedAt})
				}
				if waves := waveCounts(nextProg); err == nil && (next.Version != last.Version || !slices.Equal(waves, lastWaves)) {
					err = writeSSE(w, "progress", nextView)
					lastWaves = waves
				}
				last = next
			}
		}
		if err != nil {
			return nil // the client is gone; the response is committed
		}
		w.Flush()
	}
}

// look reads a campaign and its progress.
func (a *API) look(ctx context.Context, m Campaigns, id string) (*campaigns.Campaign, campaignJSON, campaigns.Progress, error) {
	cmp, err := m.Get(ctx, id)
	if err != nil {
		return nil, campaignJSON{}, campaigns.Progress{}, err
	}
	v, p, err := a.view(ctx, m, cmp)
	return cmp, v, p, err
}

func waveCounts(p campaigns.Progress) []plan.Counts {
	out := make([]plan.Counts, len(p.Waves))
	for i, w := range p.Waves {
		out[i] = w.Counts
	}
	return out
}

// writeSSE writes one event with v as its JSON data line.
func writeSSE(w *echo.Response, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err
}
