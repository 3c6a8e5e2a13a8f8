package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/bootstrap"
	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
)

// Bootstrap is the Bootstrap Server's administration (bootstrap.Admin implements it).
type Bootstrap interface {
	SetConfig(ctx context.Context, c *bootstrap.Config, dmPSK, bsPSK *bootstrap.PSK) error
	Config(ctx context.Context, scope bootstrap.Scope, name string) (*bootstrap.Config, error)
	Configs(ctx context.Context) ([]*bootstrap.Config, error)
	DeleteConfig(ctx context.Context, scope bootstrap.Scope, name string) error
	Sessions(ctx context.Context, endpoint string, limit int) ([]*bootstrap.Session, error)
}

const (
	bootstrapPath            = Prefix + "/bootstrap"
	bootstrapConfigsPath     = bootstrapPath + "/configs"
	bootstrapConfigPath      = bootstrapConfigsPath + "/:scope/:name"
	bootstrapCredentialPath  = bootstrapPath + "/credentials/:endpoint"
	bootstrapImportPath      = bootstrapPath + "/credentials/import"
	bootstrapSessionsPath    = bootstrapPath + "/devices/:endpoint/sessions"
	bootstrapTriggerPath     = bootstrapPath + "/devices/:endpoint/trigger"
	maxBootstrapSessionsPage = 100
)

// WithBootstrap serves the /bootstrap routes: configurations over b, bootstrap PSKs over creds
// (PUT and DELETE of one, a bulk import as for device credentials). Without it they answer 404.
func (a *API) WithBootstrap(b Bootstrap, creds Credentials) *API {
	a.bootstrap, a.bootstrapCreds = b, creds
	return a
}

func (a *API) bootstrapRoutes(e *echo.Echo) {
	e.GET(bootstrapConfigsPath, a.listBootstrapConfigs)
	e.GET(bootstrapConfigPath, a.getBootstrapConfig)
	e.PUT(bootstrapConfigPath, a.putBootstrapConfig)
	e.DELETE(bootstrapConfigPath, a.deleteBootstrapConfig)
	e.PUT(bootstrapCredentialPath, a.putBootstrapCredential)
	e.DELETE(bootstrapCredentialPath, a.deleteBootstrapCredential)
	e.POST(bootstrapImportPath, a.importBootstrapCredentials)
	e.GET(bootstrapSessionsPath, a.listBootstrapSessions)
	e.POST(bootstrapTriggerPath, a.triggerBootstrap)
}

func (a *API) bootstrapAdmin() (Bootstrap, error) {
	if a.bootstrap == nil {
		return nil, notFound("this server runs no Bootstrap Server")
	}
	return a.bootstrap, nil
}

// bootstrapConfigBody is the body of PUT /bootstrap/configs/{scope}/{name}: the configuration
// and, for an endpoint, its keys. Keys are written, never read back.
type bootstrapConfigBody struct {
	ServerURI     string            `json:"server_uri"`
	PSK           bootstrap.PSKMode `json:"psk,omitempty"` // none, stored, generate
	PSKIdentity   string            `json:"psk_identity,omitempty"`
	ShortServerID uint16            `json:"short_server_id,omitempty"`
	Lifetime      uint32            `json:"lifetime,omitempty"`
	DefaultPmin   uint32            `json:"default_pmin,omitempty"`
	DefaultPmax   uint32            `json:"default_pmax,omitempty"`
	Storing       bool              `json:"notification_storing,omitempty"`
	Binding       string            `json:"binding,omitempty"`
	NoDiscover    bool              `json:"no_discover,omitempty"`
	ReadBack      bool              `json:"read_back,omitempty"`
	DMKey         *pskJSON          `json:"dm_psk,omitempty"`        // PSK mode stored: the device's DM PSK
	BootstrapKey  *pskJSON          `json:"bootstrap_psk,omitempty"` // the device's bootstrap PSK
	DMX509        *x509JSON         `json:"dm_x509,omitempty"`       // PSK mode x509: the device's certificate account
}

// x509JSON is a certificate account in PEM: the device's certificate and private key, and the
// DM server's certificate (optional).
type x509JSON struct {
	Certificate       string `json:"certificate"`
	PrivateKey        string `json:"private_key"`
	ServerCertificate string `json:"server_certificate,omitempty"`
}

// publicConfig is c as the API shows it: a certificate account without its (sealed) key.
func publicConfig(c *bootstrap.Config) *bootstrap.Config {
	if c == nil || c.X509 == nil {
		return c
	}
	out := *c
	out.X509 = c.X509.Public()
	return &out
}

func scopeParams(c echo.Context) (bootstrap.Scope, string, error) {
	scope := bootstrap.Scope(c.Param("scope"))
	switch scope {
	case bootstrap.ScopeEndpoint, bootstrap.ScopePrefix, bootstrap.ScopeLabel:
	default:
		return "", "", badRequest(codeInvalidPath, "scope %q: want endpoint, prefix or label", scope)
	}
	name, err := url.PathUnescape(c.Param("name"))
	if err != nil || name == "" {
		return "", "", badRequest(codeInvalidPath, "name %q is not a valid URL path segment", c.Param("name"))
	}
	return scope, name, nil
}

func decodePSK(p *pskJSON, what string) (*bootstrap.PSK, error) {
	if p == nil {
		return nil, nil
	}
	key, err := hex.DecodeString(strings.TrimSpace(p.Key))
	if err != nil || len(key) == 0 {
		return nil, badRequest(codeInvalidJSON, "%s.key must be hex", what)
	}
	return &bootstrap.PSK{Identity: p.Identity, Key: key}, nil
}

func mapBootstrapError(subject string, err error) error {
	switch {
	case errors.Is(err, bootstrap.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: strings.TrimPrefix(err.Error(), "bootstrap: invalid configuration: "), Err: err}
	case errors.Is(err, bootstrap.ErrNotFound):
		return notFound("%s: none stored", subject)
	}
	return mapCredentialError(subject, err)
}

// putBootstrapConfig: PUT /bootstrap/configs/{scope}/{name}.
func (a *API) putBootstrapConfig(c echo.Context) error {
	b, err := a.bootstrapAdmin()
	if err != nil {
		return err
	}
	scope, name, err := scopeParams(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in bootstrapConfigBody
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	dmPSK, err := decodePSK(in.DMKey, "dm_psk")
	if err != nil {
		return err
	}
	bsPSK, err := decodePSK(in.BootstrapKey, "bootstrap_psk")
	if err != nil {
		return err
	}
	cfg := &bootstrap.Config{Scope: scope, Name: name, ServerURI: in.ServerURI, PSK: in.PSK, PSKIdentity: in.PSKIdentity,
		ShortServerID: in.ShortServerID, Lifetime: in.Lifetime, DefaultPmin: in.DefaultPmin, DefaultPmax: in.DefaultPmax,
		Storing: in.Storing, Binding: in.Binding, NoDiscover: in.NoDiscover, ReadBack: in.ReadBack}
	if x := in.DMX509; x != nil {
		acct, err := bootstrap.ParseX509([]byte(x.Certificate), []byte(x.PrivateKey), []byte(x.ServerCertificate))
		if err != nil {
			return mapBootstrapError("dm_x509", err)
		}
		cfg.X509 = acct
	}
	if err := b.SetConfig(c.Request().Context(), cfg, dmPSK, bsPSK); err != nil {
		return mapBootstrapError("bootstrap configuration "+string(scope)+":"+name, err)
	}
	return c.JSON(http.StatusOK, publicConfig(cfg))
}

// getBootstrapConfig: GET /bootstrap/configs/{scope}/{name} (no key in it).
func (a *API) getBootstrapConfig(c echo.Context) error {
	b, err := a.bootstrapAdmin()
	if err != nil {
		return err
	}
	scope, name, err := scopeParams(c)
	if err != nil {
		return err
	}
	cfg, err := b.Config(c.Request().Context(), scope, name)
	if err != nil {
		return mapBootstrapError("bootstrap configuration "+string(scope)+":"+name, err)
	}
	return c.JSON(http.StatusOK, publicConfig(cfg))
}

// listBootstrapConfigs: GET /bootstrap/configs.
func (a *API) listBootstrapConfigs(c echo.Context) error {
	b, err := a.bootstrapAdmin()
	if err != nil {
		return err
	}
	cfgs, err := b.Configs(c.Request().Context())
	if err != nil {
		return mapError("bootstrap configurations", err)
	}
	if cfgs == nil {
		cfgs = []*bootstrap.Config{}
	}
	for i, cfg := range cfgs {
		cfgs[i] = publicConfig(cfg)
	}
	return c.JSON(http.StatusOK, map[string]any{"configs": cfgs})
}

// deleteBootstrapConfig: DELETE /bootstrap/configs/{scope}/{name}.
func (a *API) deleteBootstrapConfig(c echo.Context) error {
	b, err := a.bootstrapAdmin()
	if err != nil {
		return err
	}
	scope, name, err := scopeParams(c)
	if err != nil {
		return err
	}
	if err := b.DeleteConfig(c.Request().Context(), scope, name); err != nil {
		return mapBootstrapError("bootstrap configuration "+string(scope)+":"+name, err)
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) bootstrapCredentialStore() (Credentials, error) {
	if a.bootstrapCreds == nil {
		return nil, notFound("this server keeps no bootstrap credentials")
	}
	return a.bootstrapCreds, nil
}

// putBootstrapCredential: PUT /bootstrap/credentials/{endpoint} {"psk":{"identity":..., "key":"<hex>"}}.
func (a *API) putBootstrapCredential(c echo.Context) error {
	store, err := a.bootstrapCredentialStore()
	if err != nil {
		return err
	}
	return putPSK(c, store, "bootstrap credential of ")
}

// deleteBootstrapCredential: DELETE /bootstrap/credentials/{endpoint}.
func (a *API) deleteBootstrapCredential(c echo.Context) error {
	store, err := a.bootstrapCredentialStore()
	if err != nil {
		return err
	}
	return deletePSK(c, store, "bootstrap credential of ")
}

// importBootstrapCredentials: POST /bootstrap/credentials/import, as POST /credentials/import.
func (a *API) importBootstrapCredentials(c echo.Context) error {
	store, err := a.bootstrapCredentialStore()
	if err != nil {
		return err
	}
	return a.importInto(c, store)
}

// listBootstrapSessions: GET /bootstrap/devices/{endpoint}/sessions[?limit=N], newest first.
func (a *API) listBootstrapSessions(c echo.Context) error {
	b, err := a.bootstrapAdmin()
	if err != nil {
		return err
	}
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	limit := 20
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxBootstrapSessionsPage {
			return badRequest(codeInvalidRequest, "limit must be 1 to %d", maxBootstrapSessionsPage)
		}
		limit = n
	}
	ss, err := b.Sessions(c.Request().Context(), ep, limit)
	if err != nil {
		return mapError("bootstrap sessions of "+ep, err)
	}
	if ss == nil {
		ss = []*bootstrap.Session{}
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": ss})
}

// triggerBootstrap: POST /bootstrap/devices/{endpoint}/trigger[?instance=N]: Execute of
// /1/N/9, Bootstrap-Request Trigger (default instance 0, the one lwota's bootstrap writes). The
// device then bootstraps again: with a generated DM PSK, that rotates its key.
func (a *API) triggerBootstrap(c echo.Context) error {
	if _, err := a.bootstrapAdmin(); err != nil {
		return err
	}
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	inst := uint64(0)
	if s := c.QueryParam("instance"); s != "" {
		if inst, err = strconv.ParseUint(s, 10, 16); err != nil || inst == 65535 {
			return badRequest(codeInvalidRequest, "instance must be 0 to 65534")
		}
	}
	req := dm.Request{Op: dm.OpExecute, Path: lwm2m.NewPath(1, uint16(inst), 9)}
	res, pending, err := a.doDevice(c.Request().Context(), ep, req)
	if err != nil {
		return err
	}
	return a.writeOutcome(c, res, pending)
}
