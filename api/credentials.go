package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/credentials"
)

// Credentials are the devices' DTLS credentials (credentials.Manager implements it).
type Credentials interface {
	// Put sets (or rotates: replaces) endpoint's PSK credential.
	Put(ctx context.Context, endpoint, identity string, key []byte) error
	// Delete revokes endpoint's credential: its next handshake fails.
	Delete(ctx context.Context, endpoint string) error
	// Import stores entries all together, or refuses them all with a *credentials.ImportError.
	Import(ctx context.Context, entries []credentials.ImportEntry) (*credentials.ImportResult, error)
	// Check reports what Import would refuse, storing nothing.
	Check(ctx context.Context, entries []credentials.ImportEntry) ([]credentials.LineError, error)
}

const credentialsPath = Prefix + "/devices/:endpoint/credentials"

// WithCredentials serves PUT and DELETE /devices/{endpoint}/credentials and POST
// /credentials/import over c. Without it these routes answer 404.
func (a *API) WithCredentials(c Credentials) *API {
	a.creds = c
	return a
}

func (a *API) credentialRoutes(e *echo.Echo) {
	e.PUT(credentialsPath, a.putCredentials)
	e.DELETE(credentialsPath, a.deleteCredentials)
	e.POST(credentialsImportPath, a.importCredentials) // credentials_import.go
}

// credentialsBody is the body of PUT /devices/{endpoint}/credentials.
type credentialsBody struct {
	PSK *pskJSON `json:"psk"`
}

type pskJSON struct {
	Identity string `json:"identity"`
	Key      string `json:"key"` // hex
}

func (a *API) credentialStore() (Credentials, error) {
	if a.creds == nil {
		return nil, notFound("this server keeps no device credentials")
	}
	return a.creds, nil
}

// putCredentials: PUT /devices/{endpoint}/credentials {"psk":{"identity":..., "key":"<hex>"}}.
func (a *API) putCredentials(c echo.Context) error {
	store, err := a.credentialStore()
	if err != nil {
		return err
	}
	return putPSK(c, store, "credentials of ")
}

// deleteCredentials: DELETE /devices/{endpoint}/credentials.
func (a *API) deleteCredentials(c echo.Context) error {
	store, err := a.credentialStore()
	if err != nil {
		return err
	}
	return deletePSK(c, store, "credentials of ")
}

// putPSK stores the PSK of the request's body for the endpoint of its path in store (device or
// bootstrap credentials); what prefixes the endpoint in errors.
func putPSK(c echo.Context, store Credentials, what string) error {
	var in credentialsBody
	ep, err := endpointBody(c, &in)
	if err != nil {
		return err
	}
	if in.PSK == nil {
		return badRequest(codeInvalidJSON, "request body: psk is missing")
	}
	key, err := hex.DecodeString(strings.TrimSpace(in.PSK.Key))
	if err != nil {
		return badRequest(codeInvalidJSON, "psk.key must be hex")
	}
	if err := store.Put(c.Request().Context(), ep, in.PSK.Identity, key); err != nil {
		return mapCredentialError(what+ep, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// deletePSK deletes the PSK of the endpoint of the request's path from store.
func deletePSK(c echo.Context, store Credentials, what string) error {
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	if err := store.Delete(c.Request().Context(), ep); err != nil {
		return mapCredentialError(what+ep, err)
	}
	return c.NoContent(http.StatusNoContent)
}

func mapCredentialError(subject string, err error) *apiError {
	switch {
	case errors.Is(err, credentials.ErrInvalid):
		msg := strings.TrimPrefix(err.Error(), "credentials: invalid credential: ")
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: msg, Err: err}
	case errors.Is(err, credentials.ErrIdentityTaken):
		return &apiError{Status: http.StatusConflict, Code: codeIdentityTaken,
			Message: "this PSK identity belongs to another device", Err: err}
	case errors.Is(err, credentials.ErrNotFound):
		return notFound("%s: none stored", subject)
	}
	return mapError(subject, err)
}
