package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/firmware"
	"github.com/lwota/lwota/firmware/signing"
)

const keysPath = Prefix + "/signing-keys"

func (a *API) keyRoutes(e *echo.Echo) {
	e.POST(keysPath, a.addKey)
	e.GET(keysPath, a.listKeys)
	e.DELETE(keysPath+"/:id", a.revokeKey)
}

// keyJSON is a trusted signing key as the API shows it.
type keyJSON struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Algorithm    string    `json:"algorithm"`
	PublicKeyPEM string    `json:"public_key_pem"`
	Fingerprint  string    `json:"fingerprint"`
	CreatedAt    time.Time `json:"created_at"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
}

func newKeyJSON(k *signing.Key) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Algorithm: string(k.Algorithm), PublicKeyPEM: k.PublicKeyPEM,
		Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

type keyList struct {
	Keys []keyJSON `json:"keys"`
}

// addKeyBody is the body of POST /signing-keys.
type addKeyBody struct {
	Name         string `json:"name"`
	PublicKeyPEM string `json:"public_key_pem"`
}

// addKey: POST /signing-keys {"name":..., "public_key_pem":...}
func (a *API) addKey(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var in addKeyBody
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.Name) == "" || strings.TrimSpace(in.PublicKeyPEM) == "" {
		return badRequest(codeInvalidKey, "a signing key needs a name and a public_key_pem")
	}
	k, err := images.AddKey(c.Request().Context(), in.Name, []byte(in.PublicKeyPEM))
	if err != nil {
		return mapKeyError("signing key "+in.Name, err)
	}
	return c.JSON(http.StatusCreated, newKeyJSON(k))
}

// listKeys: GET /signing-keys, revoked ones included.
func (a *API) listKeys(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	keys, err := images.Keys(c.Request().Context())
	if err != nil {
		return mapKeyError("signing key list", err)
	}
	out := keyList{Keys: make([]keyJSON, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, newKeyJSON(k))
	}
	return c.JSON(http.StatusOK, out)
}

// revokeKey: DELETE /signing-keys/{id}. The key stays listed, with revoked_at set.
func (a *API) revokeKey(c echo.Context) error {
	images, err := a.catalog()
	if err != nil {
		return err
	}
	id, err := idParam(c, "signing key")
	if err != nil {
		return err
	}
	k, err := images.RevokeKey(c.Request().Context(), id)
	if err != nil {
		return mapKeyError("signing key "+id, err)
	}
	return c.JSON(http.StatusOK, newKeyJSON(k))
}

// mapKeyError is mapImageError, except that an invalid request is a key the catalog refused.
func mapKeyError(subject string, err error) *apiError {
	if errors.Is(err, firmware.ErrInvalid) {
		// ErrInvalid reads "invalid upload"; for a key only its detail helps.
		msg := strings.Replace(catalogMessage(err), "invalid upload: ", "", 1)
		if msg == "invalid upload" {
			msg = "the public key is not one lwota can use"
		}
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidKey, Message: msg, Err: err}
	}
	return mapImageError(subject, err)
}
