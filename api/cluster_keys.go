package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/credentials"
	"github.com/lwota/lwota/server/credentials/keyring"
)

// ClusterKeys are the keys the nodes of a cluster share (cmd/lwota's keyring wiring implements
// it). Secrets never leave it: the API shows key ids and states only.
type ClusterKeys interface {
	// Keys returns every purpose's keys, active first.
	Keys(ctx context.Context) ([]keyring.Set, error)
	// Rotate makes a new active key for purpose; the previous one stays accepted.
	Rotate(ctx context.Context, purpose string) (keyring.Set, error)
	// Retire deletes an accepted key nothing uses any more.
	Retire(ctx context.Context, purpose string, id uint32) (keyring.Set, error)
	// Reseal moves every stored credential to the active credential-seal key.
	Reseal(ctx context.Context) (credentials.ResealResult, error)
}

const clusterKeysPath = Prefix + "/cluster/keys"

// WithClusterKeys serves /cluster/keys over k. Without it (a node keeping its keys in DATA_DIR)
// these routes answer 404.
func (a *API) WithClusterKeys(k ClusterKeys) *API {
	a.clusterKeys = k
	return a
}

func (a *API) clusterKeyRoutes(e *echo.Echo) {
	e.GET(clusterKeysPath, a.listClusterKeys)
	e.POST(clusterKeysPath+"/:purpose/rotate", a.rotateClusterKey)
	e.POST(clusterKeysPath+"/:purpose/reseal", a.resealClusterKey)
	e.DELETE(clusterKeysPath+"/:purpose/:id", a.retireClusterKey)
}

type clusterKeyJSON struct {
	ID    uint32 `json:"id"`
	State string `json:"state"`
}

type clusterKeySetJSON struct {
	Purpose string           `json:"purpose"`
	Keys    []clusterKeyJSON `json:"keys"`
}

func newClusterKeySetJSON(s keyring.Set) clusterKeySetJSON {
	out := clusterKeySetJSON{Purpose: s.Purpose, Keys: make([]clusterKeyJSON, len(s.Keys))}
	for i, k := range s.Keys {
		out.Keys[i] = clusterKeyJSON{ID: k.ID, State: k.State}
	}
	return out
}

func (a *API) clusterKeyring() (ClusterKeys, error) {
	if a.clusterKeys == nil {
		return nil, notFound("this server keeps its keys in its data directory (no --cluster-key)")
	}
	return a.clusterKeys, nil
}

// purposeParam is the :purpose segment: download-token or credential-seal.
func purposeParam(c echo.Context) (string, error) {
	p := c.Param("purpose")
	for _, known := range keyring.Purposes {
		if p == known {
			return p, nil
		}
	}
	return "", notFound("no key purpose %q (download-token or credential-seal)", p)
}

// listClusterKeys: GET /cluster/keys.
func (a *API) listClusterKeys(c echo.Context) error {
	k, err := a.clusterKeyring()
	if err != nil {
		return err
	}
	sets, err := k.Keys(c.Request().Context())
	if err != nil {
		return mapClusterKeyError("cluster keys", err)
	}
	out := struct {
		Purposes []clusterKeySetJSON `json:"purposes"`
	}{Purposes: make([]clusterKeySetJSON, len(sets))}
	for i, s := range sets {
		out.Purposes[i] = newClusterKeySetJSON(s)
	}
	return c.JSON(http.StatusOK, out)
}

// rotateClusterKey: POST /cluster/keys/{purpose}/rotate.
func (a *API) rotateClusterKey(c echo.Context) error {
	k, err := a.clusterKeyring()
	if err != nil {
		return err
	}
	p, err := purposeParam(c)
	if err != nil {
		return err
	}
	set, err := k.Rotate(c.Request().Context(), p)
	if err != nil {
		return mapClusterKeyError(p+" keys", err)
	}
	auditNote(c, "key_id", strconv.FormatUint(uint64(set.Active().ID), 10))
	return c.JSON(http.StatusOK, newClusterKeySetJSON(set))
}

// resealClusterKey: POST /cluster/keys/credential-seal/reseal.
func (a *API) resealClusterKey(c echo.Context) error {
	k, err := a.clusterKeyring()
	if err != nil {
		return err
	}
	p, err := purposeParam(c)
	if err != nil {
		return err
	}
	if p != keyring.CredentialSeal {
		return badRequest(codeInvalidRequest, "only credential-seal keys seal stored rows; %s keys need no re-seal", p)
	}
	res, err := k.Reseal(c.Request().Context())
	if err != nil {
		return mapClusterKeyError("re-seal", err)
	}
	auditNote(c, "resealed", strconv.Itoa(res.Resealed))
	return c.JSON(http.StatusOK, map[string]int{"resealed": res.Resealed, "skipped": res.Skipped})
}

// retireClusterKey: DELETE /cluster/keys/{purpose}/{id}.
func (a *API) retireClusterKey(c echo.Context) error {
	k, err := a.clusterKeyring()
	if err != nil {
		return err
	}
	p, err := purposeParam(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || id == 0 {
		return badRequest(codeInvalidPath, "key id %q is not a positive number", c.Param("id"))
	}
	set, err := k.Retire(c.Request().Context(), p, uint32(id))
	if err != nil {
		return mapClusterKeyError(p+" key "+c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, newClusterKeySetJSON(set))
}

func mapClusterKeyError(subject string, err error) *apiError {
	switch {
	case errors.Is(err, keyring.ErrNotFound):
		return notFound("%s: not found", subject)
	case errors.Is(err, keyring.ErrActive):
		return &apiError{Status: http.StatusConflict, Code: codeKeyActive, Message: subject + " is the active key: rotate first", Err: err}
	case errors.Is(err, keyring.ErrInUse):
		return &apiError{Status: http.StatusConflict, Code: codeKeyInUse,
			Message: subject + " still seals stored credentials: re-seal them first (POST /api/v1/cluster/keys/credential-seal/reseal)", Err: err}
	case errors.Is(err, keyring.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: codeKeyActive, Message: subject + ": another node rotated at the same moment; try again", Err: err}
	}
	return mapError(subject, err)
}
