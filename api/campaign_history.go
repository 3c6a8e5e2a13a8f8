package api

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/campaigns"
)

// Limits of the history and preview routes.
const (
	maxHistoryEvents    = 1000 // the newest events a history answer lists
	maxPreviewEndpoints = 1000 // endpoint= parameters of a preview
)

// campaignHistoryJSON answers GET /campaigns/{id}/history: the members per state over time and
// who did what to the campaign.
type campaignHistoryJSON struct {
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	StepSeconds int                 `json:"step_seconds"`
	Samples     []historySampleJSON `json:"samples"`
	Events      []campaignEventJSON `json:"events"`
	// EventsTruncated: older events were left out (only the newest maxHistoryEvents are listed).
	EventsTruncated bool `json:"events_truncated,omitempty"`
}

type historySampleJSON struct {
	At     time.Time  `json:"at"`
	Counts countsJSON `json:"counts"`
}

// campaignEventJSON is one line of a campaign's history: an operator's action (the API token's
// name as actor) or a decision of the campaign's own (actor "lwota").
type campaignEventJSON struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
}

// campaignHistory: GET /campaigns/{id}/history?points=N. The samples are rebuilt from the stored
// members (campaigns.HistoryOf), at most points of them (2..500, default 500), so that a page
// opened late still draws the whole campaign.
func (a *API) campaignHistory(c echo.Context) error {
	m, id, err := a.campaignParam(c)
	if err != nil {
		return err
	}
	points := campaigns.MaxHistorySamples
	if s := c.QueryParam("points"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 || n > campaigns.MaxHistorySamples {
			return badRequest(codeInvalidQuery, "points must be an integer from 2 to %d, not %q", campaigns.MaxHistorySamples, s)
		}
		points = n
	}
	ctx := c.Request().Context()
	cmp, err := m.Get(ctx, id)
	if err != nil {
		return mapCampaignError("campaign "+id, err)
	}
	members, err := m.Members(ctx, id, campaigns.MemberFilter{})
	if err != nil {
		return mapCampaignError("campaign "+id, err)
	}
	events, err := m.History(ctx, id)
	if err != nil {
		return mapCampaignError("campaign "+id, err)
	}
	h := campaigns.HistoryOf(cmp, members, a.cfg.Now(), points)
	out := campaignHistoryJSON{From: h.From, To: h.To, StepSeconds: int(h.Step / time.Second),
		Samples: make([]historySampleJSON, len(h.Samples)), Events: make([]campaignEventJSON, 0, min(len(events), maxHistoryEvents))}
	for i, s := range h.Samples {
		out.Samples[i] = historySampleJSON{At: s.At, Counts: newCountsJSON(s.Counts)}
	}
	if len(events) > maxHistoryEvents {
		events, out.EventsTruncated = events[len(events)-maxHistoryEvents:], true
	}
	for _, e := range events {
		out.Events = append(out.Events, campaignEventJSON{At: e.At, Actor: e.Actor, Action: e.Action, From: string(e.From),
			To: string(e.To), Reason: e.Reason})
	}
	return c.JSON(http.StatusOK, out)
}

// campaignPreviewJSON answers GET /campaigns/preview: what a selector picks now.
type campaignPreviewJSON struct {
	Devices int                `json:"devices"`
	Sample  []string           `json:"sample"` // the first endpoints, in endpoint order
	Models  []previewModelJSON `json:"models"` // most devices first
	// With image_id: how many of them are already on its version, are not what it is built for
	// (a campaign over them is refused), and are held by another campaign (refused too).
	ImageID         string `json:"image_id,omitempty"`
	ImageVersion    string `json:"image_version,omitempty"`
	UpToDate        int    `json:"already_up_to_date"`
	NotForImage     int    `json:"not_for_image"`
	InOtherCampaign int    `json:"in_other_campaigns"`
}

type previewModelJSON struct {
	Model   string `json:"model"`
	Devices int    `json:"devices"`
}

// previewCampaign: GET /campaigns/preview?query=...|endpoint=a&endpoint=b[&image_id=]. It is the
// create form's live count: the same selection as POST /campaigns, nothing stored, and as a GET
// it leaves no audit entry per keystroke.
func (a *API) previewCampaign(c echo.Context) error {
	m, err := a.campaignManager()
	if err != nil {
		return err
	}
	q := c.QueryParams()
	var endpoints []string
	for _, ep := range q["endpoint"] {
		if ep = strings.TrimSpace(ep); ep != "" {
			endpoints = append(endpoints, ep)
		}
	}
	if len(endpoints) > maxPreviewEndpoints {
		return badRequest(codeInvalidQuery, "at most %d endpoint parameters", maxPreviewEndpoints)
	}
	p, err := m.Preview(c.Request().Context(), strings.TrimSpace(q.Get("query")), endpoints, strings.TrimSpace(q.Get("image_id")))
	var ie *campaigns.InvalidError
	if errors.As(err, &ie) {
		parts := make([]string, len(ie.Problems))
		for i, pr := range ie.Problems {
			parts[i] = pr.Field + ": " + pr.Message
		}
		return badRequest(codeInvalidQuery, "%s", strings.Join(parts, "; "))
	}
	if err != nil {
		return mapCampaignError("campaign preview", err)
	}
	out := campaignPreviewJSON{Devices: p.Devices, Sample: slices.Clone(p.Sample), Models: make([]previewModelJSON, 0, len(p.Models)),
		UpToDate: p.UpToDate, NotForImage: p.NotForImage, InOtherCampaign: p.Busy}
	if out.Sample == nil {
		out.Sample = []string{}
	}
	for model, n := range p.Models {
		out.Models = append(out.Models, previewModelJSON{Model: model, Devices: n})
	}
	slices.SortFunc(out.Models, func(x, y previewModelJSON) int {
		if x.Devices != y.Devices {
			return y.Devices - x.Devices
		}
		return strings.Compare(x.Model, y.Model)
	})
	if p.Image != nil {
		out.ImageID, out.ImageVersion = p.Image.ID, p.Image.Version
	}
	return c.JSON(http.StatusOK, out)
}
