package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/registration"
)

// Labels are the operator's key/value labels of each endpoint, kept apart from registrations so
// that a device can be labelled before it first registers. A Devices that also implements it (the
// server core does) serves GET and PUT /devices/{endpoint}/labels; otherwise they answer 404.
type Labels interface {
	// Labels returns the labels of endpoint, an empty map when it has none.
	Labels(ctx context.Context, endpoint string) (map[string]string, error)
	// SetLabels replaces every label of endpoint; labels over the limits fail with
	// registration.ErrInvalidLabels.
	SetLabels(ctx context.Context, endpoint string, labels map[string]string) error
}

const labelsPath = Prefix + "/devices/:endpoint/labels"

func (a *API) labelRoutes(e *echo.Echo) {
	e.GET(labelsPath, a.getLabels)
	e.PUT(labelsPath, a.putLabels)
}

// labelsJSON is the body of GET and PUT /devices/{endpoint}/labels.
type labelsJSON struct {
	Labels map[string]string `json:"labels"`
}

// putLabelsBody tells a missing or null "labels" (refused: it would wipe every label by
// accident) from an empty object (remove every label).
type putLabelsBody struct {
	Labels *map[string]string `json:"labels"`
}

func (a *API) labelStore() (Labels, error) {
	if l, ok := a.devices.(Labels); ok {
		return l, nil
	}
	return nil, notFound("this server keeps no device labels")
}

// getLabels: GET /devices/{endpoint}/labels; an endpoint that never registered has labels too.
func (a *API) getLabels(c echo.Context) error {
	store, err := a.labelStore()
	if err != nil {
		return err
	}
	ep, err := endpointParam(c)
	if err != nil {
		return err
	}
	labels, err := store.Labels(c.Request().Context(), ep)
	if err != nil {
		return mapError("labels of "+ep, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	return c.JSON(http.StatusOK, labelsJSON{Labels: labels})
}

// putLabels: PUT /devices/{endpoint}/labels {"labels": {"cell": "c17"}} replaces every label
// and answers with the labels now stored.
func (a *API) putLabels(c echo.Context) error {
	store, err := a.labelStore()
	if err != nil {
		return err
	}
	var in putLabelsBody
	ep, err := endpointBody(c, &in)
	if err != nil {
		return err
	}
	if in.Labels == nil {
		return badRequest(codeInvalidJSON, `request body: labels is missing; send {"labels": {}} to remove every label`)
	}
	labels := *in.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	if err := store.SetLabels(c.Request().Context(), ep, labels); err != nil {
		if errors.Is(err, registration.ErrInvalidLabels) {
			return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: trimPkg(err.Error()), Err: err}
		}
		return mapError("labels of "+ep, err)
	}
	return c.JSON(http.StatusOK, labelsJSON{Labels: labels})
}

// parseLabelFilter reads the repeatable label parameters of a list, devices and images alike:
// every pair must match. The syntax is key=value, as in kubectl's -l and the campaign selector's
// labels.key = "v". key:value, the devices' older syntax, is accepted too, but only from a
// parameter with no '=' in it: a parameter holding '=' is always split at its first '=', so
// each parameter has exactly one reading (a value holding '=' needs the key=value form). checkKey,
// when set, refuses keys its route cannot hold (device label keys are [a-z0-9_.-]). A key given
// twice with different values could match nothing and is refused.
func parseLabelFilter(q url.Values, checkKey func(key string) error) (map[string]string, error) {
	params := q["label"]
	if len(params) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(params))
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			k, v, ok = strings.Cut(p, ":")
		}
		if !ok || k == "" {
			return nil, badRequest(codeInvalidQuery, "label must be key=value, not %q", p)
		}
		if checkKey != nil {
			if err := checkKey(k); err != nil {
				return nil, badRequest(codeInvalidQuery, "label %q: %s", p, err)
			}
		}
		if old, dup := out[k]; dup && old != v {
			return nil, badRequest(codeInvalidQuery, "label %q is given twice, with %q and %q", k, old, v)
		}
		out[k] = v
	}
	return out, nil
}

// deviceLabelKey checks a device label key in a filter: a key no device can have is a mistake
// worth a 400, not an empty list.
func deviceLabelKey(k string) error {
	if registration.ValidateLabelKey(k) != nil {
		return fmt.Errorf("the key must be 1 to %d characters from a-z, 0-9, '_', '.' and '-'", registration.MaxLabelKeyLen)
	}
	return nil
}
