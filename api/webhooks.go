package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/webhooks"
)

// Webhooks manages webhook subscriptions and their deliveries (*webhooks.Dispatcher implements it).
type Webhooks interface {
	// Create validates and stores a subscription: errors matching webhooks.ErrInvalid say what to fix.
	Create(ctx context.Context, url string, kinds []string, secret string, enabled bool, by string) (*webhooks.Subscription, error)
	// Get, Delete, Deliveries and Retry fail with webhooks.ErrNotFound for an unknown id.
	Get(ctx context.Context, id string) (*webhooks.Subscription, error)
	List(ctx context.Context) ([]*webhooks.Subscription, error)
	Delete(ctx context.Context, id string) error
	Deliveries(ctx context.Context, f webhooks.DeliveryFilter) ([]*webhooks.Delivery, error)
	Retry(ctx context.Context, subscriptionID, id string) (*webhooks.Delivery, error)
}

const webhooksPath = Prefix + "/webhooks"

// WithWebhooks serves the webhook routes under /webhooks over w. Without it these routes answer 404.
func (a *API) WithWebhooks(w Webhooks) *API {
	a.webhooks = w
	return a
}

func (a *API) webhookRoutes(e *echo.Echo) {
	e.POST(webhooksPath, a.createWebhook)
	e.GET(webhooksPath, a.listWebhooks)
	e.GET(webhooksPath+"/:id", a.getWebhook)
	e.DELETE(webhooksPath+"/:id", a.deleteWebhook)
	e.GET(webhooksPath+"/:id/deliveries", a.listWebhookDeliveries)
	e.POST(webhooksPath+"/:id/deliveries/:delivery/retry", a.retryWebhookDelivery)
}

func (a *API) webhookManager() (Webhooks, error) {
	if a.webhooks == nil {
		return nil, notFound("this server delivers no webhooks")
	}
	return a.webhooks, nil
}

// webhookJSON is a subscription as the API shows it; Secret only in the answer that made it.
type webhookJSON struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Kinds     []string  `json:"kinds"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Secret    string    `json:"secret,omitempty"`
}

func newWebhookJSON(s *webhooks.Subscription) webhookJSON {
	return webhookJSON{ID: s.ID, URL: s.URL, Kinds: s.Kinds, Enabled: s.Enabled, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy}
}

// deliveryJSON is one delivery of a subscription.
type deliveryJSON struct {
	ID            string          `json:"id"`
	Subscription  string          `json:"subscription"`
	EventID       string          `json:"event_id"`
	Kind          string          `json:"kind"`
	Type          string          `json:"type"`
	Endpoint      string          `json:"endpoint,omitempty"`
	Time          time.Time       `json:"time"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	QueuedAt      time.Time       `json:"queued_at"`
	LastStatus    int             `json:"last_status,omitempty"`
	LastError     string          `json:"last_error,omitempty"`
	EndedAt       time.Time       `json:"ended_at,omitzero"`
	Data          json.RawMessage `json:"data"`
}

func newDeliveryJSON(d *webhooks.Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, Subscription: d.SubscriptionID, EventID: d.EventID, Kind: d.Kind, Type: d.EventType,
		Endpoint: d.Endpoint, Time: d.At, State: string(d.State), Attempts: d.Attempts, QueuedAt: d.QueuedAt,
		LastStatus: d.LastStatus, LastError: d.LastError, EndedAt: d.EndedAt, Data: d.Payload}
	if d.State == webhooks.StatePending {
		out.NextAttemptAt = d.NextAttemptAt
	}
	if len(out.Data) == 0 {
		out.Data = json.RawMessage("{}")
	}
	return out
}

// createWebhookBody is the body of POST /webhooks. Enabled defaults to true.
type createWebhookBody struct {
	URL     string   `json:"url"`
	Kinds   []string `json:"kinds"`
	Secret  string   `json:"secret"`
	Enabled *bool    `json:"enabled"`
}

// createWebhook: POST /webhooks {"url", "kinds", "secret"?, "enabled"?}; the answer carries the
// secret, once.
func (a *API) createWebhook(c echo.Context) error {
	m, err := a.webhookManager()
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in createWebhookBody
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	enabled := in.Enabled == nil || *in.Enabled
	by := "api"
	if p := principal(c); p != nil {
		by = p.Actor()
	}
	sub, err := m.Create(c.Request().Context(), in.URL, in.Kinds, in.Secret, enabled, by)
	if err != nil {
		return mapWebhookError("webhook", err)
	}
	auditNote(c, "webhook_id", sub.ID)
	auditNote(c, "url", redactURL(sub.URL))
	out := newWebhookJSON(sub)
	out.Secret = sub.Secret
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Set(echo.HeaderLocation, webhooksPath+"/"+url.PathEscape(sub.ID))
	return c.JSON(http.StatusCreated, out)
}

// redactURL keeps a URL's scheme, host and path for the audit log: a query may hold a receiver's
// own token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery = ""
	return u.String()
}

// listWebhooks: GET /webhooks, never a secret.
func (a *API) listWebhooks(c echo.Context) error {
	m, err := a.webhookManager()
	if err != nil {
		return err
	}
	subs, err := m.List(c.Request().Context())
	if err != nil {
		return mapWebhookError("webhook list", err)
	}
	out := struct {
		Webhooks []webhookJSON `json:"webhooks"`
	}{Webhooks: make([]webhookJSON, 0, len(subs))}
	for _, s := range subs {
		out.Webhooks = append(out.Webhooks, newWebhookJSON(s))
	}
	return c.JSON(http.StatusOK, out)
}

// webhookParam is the manager and the subscription id of a /webhooks/{id} route.
func (a *API) webhookParam(c echo.Context) (Webhooks, string, error) {
	m, err := a.webhookManager()
	if err != nil {
		return nil, "", err
	}
	id, err := idParam(c, "webhook")
	if err != nil {
		return nil, "", err
	}
	return m, id, nil
}

// getWebhook: GET /webhooks/{id}.
func (a *API) getWebhook(c echo.Context) error {
	m, id, err := a.webhookParam(c)
	if err != nil {
		return err
	}
	sub, err := m.Get(c.Request().Context(), id)
	if err != nil {
		return mapWebhookError("webhook "+id, err)
	}
	return c.JSON(http.StatusOK, newWebhookJSON(sub))
}

// deleteWebhook: DELETE /webhooks/{id}: the subscription and its deliveries, pending ones included.
func (a *API) deleteWebhook(c echo.Context) error {
	m, id, err := a.webhookParam(c)
	if err != nil {
		return err
	}
	if err := m.Delete(c.Request().Context(), id); err != nil {
		return mapWebhookError("webhook "+id, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// listWebhookDeliveries: GET /webhooks/{id}/deliveries?state=pending|delivered|dead&limit=,
// newest first.
func (a *API) listWebhookDeliveries(c echo.Context) error {
	m, id, err := a.webhookParam(c)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	f := webhooks.DeliveryFilter{SubscriptionID: id, State: webhooks.State(q.Get("state")), Limit: a.cfg.DefaultPageSize}
	if f.State != "" && !f.State.Valid() {
		return badRequest(codeInvalidQuery, "state must be pending, delivered or dead, not %q", q.Get("state"))
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return badRequest(codeInvalidQuery, "limit must be a positive integer")
		}
		f.Limit = min(n, a.cfg.MaxPageSize)
	}
	ds, err := m.Deliveries(c.Request().Context(), f)
	if err != nil {
		return mapWebhookError("webhook "+id, err)
	}
	out := struct {
		Deliveries []deliveryJSON `json:"deliveries"`
	}{Deliveries: make([]deliveryJSON, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, newDeliveryJSON(d))
	}
	return c.JSON(http.StatusOK, out)
}

// retryWebhookDelivery: POST /webhooks/{id}/deliveries/{delivery}/retry makes the delivery pending
// again, with fresh attempts, due now.
func (a *API) retryWebhookDelivery(c echo.Context) error {
	m, id, err := a.webhookParam(c)
	if err != nil {
		return err
	}
	raw := c.Param("delivery")
	did, err := url.PathUnescape(raw)
	if err != nil || did == "" {
		return badRequest(codeInvalidPath, "delivery id %q is not a valid URL path segment", raw)
	}
	d, err := m.Retry(c.Request().Context(), id, did)
	if err != nil {
		return mapWebhookError("delivery "+did+" of webhook "+id, err)
	}
	auditNote(c, "webhook_id", id)
	auditNote(c, "delivery", did)
	return c.JSON(http.StatusOK, newDeliveryJSON(d))
}

func mapWebhookError(subject string, err error) *apiError {
	switch {
	case errors.Is(err, webhooks.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidWebhook, Message: strings.TrimPrefix(err.Error(), "webhooks: invalid: "), Err: err}
	case errors.Is(err, webhooks.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: subject + " does not exist", Err: err}
	}
	return mapError(subject, err)
}
