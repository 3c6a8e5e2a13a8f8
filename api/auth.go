package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
)

// Tokens checks bearer secrets and manages tokens (*apitoken.Manager implements it).
type Tokens interface {
	// Authenticate returns the live token of secret, or an error matching apitoken.ErrUnauthenticated.
	Authenticate(ctx context.Context, secret string) (*apitoken.Token, error)
	// Create makes a token and returns it with its secret, shown once.
	Create(ctx context.Context, name string, role apitoken.Role, createdBy string) (*apitoken.Token, string, error)
	List(ctx context.Context) ([]*apitoken.Token, error)
	// Revoke revokes token id and returns it; an unknown id matches apitoken.ErrNotFound.
	Revoke(ctx context.Context, id string) (*apitoken.Token, error)
}

// AuditLog records audit entries and lists them (*audit.Log implements it).
type AuditLog interface {
	audit.Recorder
	List(ctx context.Context, f audit.Filter) ([]*audit.Entry, error)
}

// WithAuth makes every route require a bearer token of a role the route table allows, and records
// every mutating call in log. Without it every route answers 401: the API never runs open.
func (a *API) WithAuth(tokens Tokens, log AuditLog) *API {
	a.tokens, a.audit = tokens, log
	return a
}

// RolePublic in a row's roles opens the route to anyone, with or without a token. No token can
// have it (apitoken.Role.Valid refuses it), so it cannot be granted by mistake.
const RolePublic apitoken.Role = "public"

// Role sets of the route table.
var (
	// public: only the OpenAPI document. It describes the API and holds no data, and clients,
	// code generators and linters fetch it before anyone has handed them a token.
	public       = []apitoken.Role{RolePublic}
	allRoles     = []apitoken.Role{apitoken.RoleAdmin, apitoken.RoleRelease, apitoken.RoleCI, apitoken.RoleSupport}
	readers      = []apitoken.Role{apitoken.RoleAdmin, apitoken.RoleRelease, apitoken.RoleSupport} // devices, updates, campaigns
	imageReaders = allRoles
	releasers    = []apitoken.Role{apitoken.RoleAdmin, apitoken.RoleRelease}
	uploaders    = []apitoken.Role{apitoken.RoleAdmin, apitoken.RoleCI}
	admins       = []apitoken.Role{apitoken.RoleAdmin}
)

// RouteRole is one row of the route table: the roles allowed to call Method on Path, an echo route
// pattern. A Path ending in "/..." covers the path without it and every route under it.
type RouteRole struct {
	Method string
	Path   string
	Roles  []apitoken.Role
}

// RouteRoles is the one place that says who may call what. A route echo serves that is missing
// here answers 403 to everyone (and TestRouteRolesCoverRoutes fails); rows for routes not served
// (yet) change nothing.
var RouteRoles = []RouteRole{
	{http.MethodGet, Prefix + "/openapi.json", public},
	{http.MethodGet, whoamiPath, allRoles},

	{http.MethodGet, Prefix + "/devices", readers},
	{http.MethodGet, Prefix + "/devices/:endpoint", readers},
	{http.MethodGet, Prefix + "/devices/:endpoint/observations", readers},
	{http.MethodGet, Prefix + "/devices/:endpoint/objects/*", readers}, // Read, Discover
	{http.MethodPut, Prefix + "/devices/:endpoint/objects/*", admins},  // Write, Write-Attributes
	{http.MethodPatch, Prefix + "/devices/:endpoint/objects/*", admins},
	{http.MethodPost, Prefix + "/devices/:endpoint/objects/*", admins}, // Execute, Create, Observe
	{http.MethodDelete, Prefix + "/devices/:endpoint/objects/*", admins},
	{http.MethodPost, compositeReadPath, readers},
	{http.MethodPost, compositeWritePath, admins},
	{http.MethodPost, compositeObservePath, admins},
	{http.MethodDelete, compositeObservePath, admins},
	{http.MethodPut, credentialsPath, admins},
	{http.MethodDelete, credentialsPath, admins},
	{http.MethodPost, credentialsImportPath, admins},
	{http.MethodGet, clusterKeysPath, admins},
	{http.MethodPost, clusterKeysPath + "/:purpose/rotate", admins},
	{http.MethodPost, clusterKeysPath + "/:purpose/reseal", admins},
	{http.MethodDelete, clusterKeysPath + "/:purpose/:id", admins},
	{http.MethodGet, clusterNodesPath, admins},
	{http.MethodPost, clusterNodesPath + "/:name/drain", admins},
	{http.MethodGet, labelsPath, readers},
	{http.MethodPut, labelsPath, releasers}, // labels select campaign targets
	{http.MethodGet, Prefix + "/requests/:id", readers},
	{http.MethodGet, Prefix + "/events", readers},

	{http.MethodPost, imagesPath, uploaders},
	{http.MethodGet, imagesPath, imageReaders},
	{http.MethodGet, imagesPath + "/:id", imageReaders},
	{http.MethodGet, imagesPath + "/:id/content", imageReaders},
	{http.MethodDelete, imagesPath + "/:id", admins},
	{http.MethodPatch, imagesPath + "/:id", releasers}, // release notes and metadata only
	{http.MethodPost, keysPath, admins},
	{http.MethodGet, keysPath, releasers},
	{http.MethodDelete, keysPath + "/:id", admins},

	{http.MethodPost, Prefix + "/devices/:endpoint/updates", releasers},
	{http.MethodGet, Prefix + "/devices/:endpoint/updates", readers},
	{http.MethodGet, Prefix + "/devices/:endpoint/updates/:id", readers},
	{http.MethodPost, Prefix + "/devices/:endpoint/updates/:id/cancel", releasers},

	{http.MethodPost, campaignsPath, releasers},
	{http.MethodGet, campaignsPath, readers},
	{http.MethodGet, campaignsPath + "/:id", readers},
	{http.MethodGet, campaignsPath + "/:id/devices", readers},
	{http.MethodGet, campaignsPath + "/:id/events", readers},
	{http.MethodGet, campaignsPath + "/:id/history", readers},
	{http.MethodGet, campaignsPath + "/preview", readers},
	{http.MethodPost, campaignsPath + "/:id/start", releasers},
	{http.MethodPost, campaignsPath + "/:id/pause", releasers},
	{http.MethodPost, campaignsPath + "/:id/resume", releasers},
	{http.MethodPost, campaignsPath + "/:id/abort", releasers},
	{http.MethodPost, campaignsPath + "/:id/approve", releasers},
	{http.MethodPost, campaignsPath + "/:id/retry", releasers},
	// Campaign routes yet to come: the same split.
	{http.MethodGet, Prefix + "/campaigns/...", readers},
	{http.MethodPost, Prefix + "/campaigns/...", releasers},
	{http.MethodPut, Prefix + "/campaigns/...", releasers},
	{http.MethodPatch, Prefix + "/campaigns/...", releasers},
	{http.MethodDelete, Prefix + "/campaigns/...", releasers},

	// Bootstrap: configurations and keys are written by release and admin, read by support too
	// (keys are never read back); a re-bootstrap rotates a device's key: release and admin.
	{http.MethodGet, bootstrapConfigsPath, readers},
	{http.MethodGet, bootstrapConfigPath, readers},
	{http.MethodPut, bootstrapConfigPath, releasers},
	{http.MethodDelete, bootstrapConfigPath, releasers},
	{http.MethodPut, bootstrapCredentialPath, releasers},
	{http.MethodDelete, bootstrapCredentialPath, releasers},
	{http.MethodPost, bootstrapImportPath, releasers},
	{http.MethodGet, bootstrapSessionsPath, readers},
	{http.MethodPost, bootstrapTriggerPath, releasers},
	// Webhooks: admins subscribe and redeliver (a subscription sends events to any URL); the
	// readers of devices and campaigns may see where they go and what failed.
	{http.MethodPost, webhooksPath, admins},
	{http.MethodGet, webhooksPath, readers},
	{http.MethodGet, webhooksPath + "/:id", readers},
	{http.MethodDelete, webhooksPath + "/:id", admins},
	{http.MethodGet, webhooksPath + "/:id/deliveries", readers},
	{http.MethodPost, webhooksPath + "/:id/deliveries/:delivery/retry", admins},

	{http.MethodPost, tokensPath, admins},
	{http.MethodGet, tokensPath, admins},
	{http.MethodDelete, tokensPath + "/:id", admins},
	{http.MethodGet, auditPath, admins},
	{http.MethodGet, fleetPath, readers},
}

// rolesFor returns the roles allowed on method and the echo route path, and whether the table
// has a row for it.
func rolesFor(method, path string) ([]apitoken.Role, bool) {
	for _, r := range RouteRoles {
		if r.Method != method {
			continue
		}
		if base, sub := strings.CutSuffix(r.Path, "/..."); sub {
			if path == base || strings.HasPrefix(path, base+"/") {
				return r.Roles, true
			}
		} else if r.Path == path {
			return r.Roles, true
		}
	}
	return nil, false
}

// isRoute reports whether echo serves method on path (an echo route pattern).
func (a *API) isRoute(method, path string) bool {
	a.routesOnce.Do(func() {
		a.routes = map[string]bool{}
		for _, r := range a.echo.Routes() {
			a.routes[r.Method+" "+r.Path] = true
		}
	})
	return a.routes[method+" "+path]
}

// principalKey is where authenticate keeps the caller's token in the echo context.
const principalKey = "lwota.principal"

// principal is the authenticated token of the request, nil before authenticate ran or when it refused.
func principal(c echo.Context) *apitoken.Token {
	t, _ := c.Get(principalKey).(*apitoken.Token)
	return t
}

// bearerSecret takes the token out of "Authorization: Bearer <token>" (the scheme in any case).
func bearerSecret(h string) (string, bool) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

func unauthorized(c echo.Context, challenge, msg string) *apiError {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: msg}
}

// authenticate answers 401 without a live bearer token and 403 when the token's role is not one the
// route table allows. Unknown routes and wrong methods still need a token, then get their 404 or 405.
// A public route is served whatever the Authorization header holds, none or a bad one.
func (a *API) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		const challenge = `Bearer realm="lwota"`
		if roles, ok := rolesFor(c.Request().Method, c.Path()); ok && slices.Contains(roles, RolePublic) {
			return next(c)
		}
		if a.tokens == nil {
			return unauthorized(c, challenge, "this server has no API tokens configured")
		}
		secret, ok := bearerSecret(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			return unauthorized(c, challenge, "an API token is required: Authorization: Bearer <token>")
		}
		tok, err := a.tokens.Authenticate(c.Request().Context(), secret)
		if errors.Is(err, apitoken.ErrUnauthenticated) {
			return unauthorized(c, challenge+`, error="invalid_token"`, "the API token is unknown or revoked")
		}
		if err != nil {
			return mapError("token", err)
		}
		c.Set(principalKey, tok)
		r := c.Request()
		c.SetRequest(r.WithContext(WithUploader(r.Context(), "token:"+tok.Name)))

		method, path := r.Method, c.Path()
		roles, known := rolesFor(method, path)
		switch {
		case known && slices.Contains(roles, tok.Role):
			return next(c)
		case known:
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("role %s may not %s %s", tok.Role, method, path)}
		case a.isRoute(method, path):
			// Served but not in RouteRoles: closed to everyone until someone decides.
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("%s %s has no role in the route table", method, path)}
		}
		return next(c) // no such route or method: echo's 404 or 405
	}
}

// errorCodeKey holds the error code writeError answered with.
const errorCodeKey = "lwota.error_code"

// auditQueuedKey marks a request queued for a sleeping device: it is audited whatever its method.
const auditQueuedKey = "lwota.audit_queued"

// auditNotesKey holds details a handler adds to its audit entry.
const auditNotesKey = "lwota.audit"

// auditNote adds k=v to the audit entry of the request (mutating calls only record one).
func auditNote(c echo.Context, k, v string) {
	m, _ := c.Get(auditNotesKey).(map[string]string)
	if m == nil {
		m = map[string]string{}
		c.Set(auditNotesKey, m)
	}
	m[k] = v
}

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// recordAudit writes an audit entry for every mutating call of an authenticated token once the
// answer is written: who, the route, the target path, the peer address and the status. Calls
// without a valid token (401) are only logged, so that anonymous floods cannot fill the audit log.
func (a *API) recordAudit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		r := c.Request()
		tok := principal(c)
		queued, _ := c.Get(auditQueuedKey).(bool)
		if !(mutating(r.Method) || queued) || tok == nil || a.audit == nil {
			return err
		}
		action := r.Method + " " + c.Path()
		if !a.isRoute(r.Method, c.Path()) {
			action = r.Method + " (no route)"
		}
		detail := map[string]string{"request_id": c.Response().Header().Get(HeaderRequestID)}
		if code, _ := c.Get(errorCodeKey).(string); code != "" {
			detail["error"] = code
		}
		if m, _ := c.Get(auditNotesKey).(map[string]string); m != nil {
			for k, v := range m {
				detail[k] = v
			}
		}
		host, _, splitErr := net.SplitHostPort(r.RemoteAddr)
		if splitErr != nil {
			host = r.RemoteAddr
		}
		e := audit.Entry{
			Actor: tok.Actor(), ActorName: tok.Name, Role: string(tok.Role), Action: action,
			Target: r.URL.EscapedPath(), RemoteAddr: host, Status: c.Response().Status, Detail: detail,
		}
		// The entry is written even when the client has gone.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if rerr := a.audit.Record(ctx, e); rerr != nil {
			a.logger.Error("audit entry not recorded", "action", action, "actor", e.Actor, "status", e.Status, "err", rerr)
		}
		return err
	}
}
