package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
)

const (
	tokensPath = Prefix + "/tokens"
	auditPath  = Prefix + "/audit"
)

func (a *API) tokenRoutes(e *echo.Echo) {
	e.POST(tokensPath, a.createToken)
	e.GET(tokensPath, a.listTokens)
	e.DELETE(tokensPath+"/:id", a.revokeToken)
	e.GET(auditPath, a.listAudit)
	e.GET(whoamiPath, a.whoami) // whoami.go
}

// tokenJSON is a token as the API shows it; Token (the secret) only in the answer that made it.
type tokenJSON struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Token      string    `json:"token,omitempty"`
}

func newTokenJSON(t *apitoken.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy,
		LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

// createTokenBody is the body of POST /tokens.
type createTokenBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// createToken: POST /tokens {"name":..., "role":...}; the answer carries the secret, once.
func (a *API) createToken(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in createTokenBody
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	by := audit.ActorSystem
	if p := principal(c); p != nil {
		by = p.Actor()
	}
	t, secret, err := a.tokens.Create(c.Request().Context(), in.Name, apitoken.Role(in.Role), by)
	if err != nil {
		return mapTokenError("token "+in.Name, err)
	}
	auditNote(c, "token_id", t.ID)
	auditNote(c, "role", string(t.Role))
	out := newTokenJSON(t)
	out.Token = secret
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusCreated, out)
}

// listTokens: GET /tokens, revoked ones included, never a secret.
func (a *API) listTokens(c echo.Context) error {
	ts, err := a.tokens.List(c.Request().Context())
	if err != nil {
		return mapTokenError("token list", err)
	}
	out := struct {
		Tokens []tokenJSON `json:"tokens"`
	}{Tokens: make([]tokenJSON, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, newTokenJSON(t))
	}
	return c.JSON(http.StatusOK, out)
}

// revokeToken: DELETE /tokens/{id}. The token stays listed, with revoked_at set.
func (a *API) revokeToken(c echo.Context) error {
	id, err := idParam(c, "token")
	if err != nil {
		return err
	}
	t, err := a.tokens.Revoke(c.Request().Context(), id)
	if err != nil {
		return mapTokenError("token "+id, err)
	}
	return c.JSON(http.StatusOK, newTokenJSON(t))
}

func mapTokenError(subject string, err error) *apiError {
	switch {
	case errors.Is(err, apitoken.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidToken, Message: strings.TrimPrefix(err.Error(), "apitoken: "), Err: err}
	case errors.Is(err, apitoken.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: subject + " does not exist", Err: err}
	}
	return mapError(subject, err)
}

// auditEntryJSON is an audit entry as the API shows it.
type auditEntryJSON struct {
	Seq        int64             `json:"seq"`
	At         time.Time         `json:"at"`
	Actor      string            `json:"actor"`
	ActorName  string            `json:"actor_name,omitempty"`
	Role       string            `json:"role,omitempty"`
	Action     string            `json:"action"`
	Target     string            `json:"target,omitempty"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Status     int               `json:"status,omitempty"`
	Outcome    string            `json:"outcome"`
	Detail     map[string]string `json:"detail,omitempty"`
}

// listAudit: GET /audit?actor=&action=&since=&until=&limit=&cursor=, newest first.
func (a *API) listAudit(c echo.Context) error {
	if a.audit == nil {
		return notFound("this server keeps no audit log")
	}
	q := c.QueryParams()
	f := audit.Filter{Actor: q.Get("actor"), Action: q.Get("action"), Limit: a.cfg.DefaultPageSize}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return badRequest(codeInvalidQuery, "%s must be an RFC 3339 time, e.g. 2026-03-01T12:00:00Z", p.name)
			}
			*p.to = t
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return badRequest(codeInvalidQuery, "limit must be a positive integer")
		}
		f.Limit = min(n, a.cfg.MaxPageSize)
	}
	if s := q.Get("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return badRequest(codeInvalidQuery, "bad cursor")
		}
		f.Before = n
	}
	entries, err := a.audit.List(c.Request().Context(), f)
	if err != nil {
		return mapError("audit log", err)
	}
	out := struct {
		Entries    []auditEntryJSON `json:"entries"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{Entries: make([]auditEntryJSON, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, auditEntryJSON{Seq: e.Seq, At: e.At, Actor: e.Actor, ActorName: e.ActorName,
			Role: e.Role, Action: e.Action, Target: e.Target, RemoteAddr: e.RemoteAddr, Status: e.Status,
			Outcome: e.Outcome, Detail: e.Detail})
	}
	if len(entries) == f.Limit && len(entries) > 0 {
		out.NextCursor = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	return c.JSON(http.StatusOK, out)
}
