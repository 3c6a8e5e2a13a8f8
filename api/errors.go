package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
)

// Error codes of the body {"error":{"code":...,"message":...}}. They are part of the API contract:
// clients branch on them, so never rename one. README.md and openapi.json list them.
const (
	codeNotFound             = "not_found"              // 404: unknown device, request, image, key, update, route or action
	codeMethodNotAllowed     = "method_not_allowed"     // 405: the route exists, the method does not
	codeInvalidRequest       = "invalid_request"        // 400: the server core rejected the request (dm.ErrInvalid)
	codeInvalidQuery         = "invalid_query"          // 400: bad query parameter or cursor
	codeInvalidPath          = "invalid_path"           // 400: not an LwM2M path, or the wrong depth for the operation
	codeInvalidFormat        = "invalid_format"         // 400: unknown ?format= name
	codeInvalidJSON          = "invalid_json"           // 400: body is not JSON, has unknown fields or the wrong shape
	codeInvalidValue         = "invalid_value"          // 400: a value does not fit its resource type
	codeDeviceOffline        = "device_offline"         // 409: the device is not registered any more or expired
	codeDeviceAsleep         = "device_asleep"          // 409: a read-only token read a sleeping device whose values lwota does not know; see expected_at
	codeBodyTooLarge         = "body_too_large"         // 413: body over Config.MaxBodyBytes
	codeUnsupportedMediaType = "unsupported_media_type" // 415: body is not application/json
	codeQueueFull            = "queue_full"             // 429: the sleeping device has too many queued requests
	codeTooManyStreams       = "too_many_streams"       // 429: the token, or the server, has its maximum of open event streams
	codeDeviceError          = "device_error"           // 400/404/405/502: the device answered an error; see device_code
	codeDeviceTimeout        = "device_timeout"         // 504: the device did not answer in time
	codeUnavailable          = "unavailable"            // 503: lwota is starting or shutting down; try again
	codeInternal             = "internal"               // 500: a bug or a failing store; details are in the server log
	codeInvalidUpload        = "invalid_upload"         // 400: multipart parts missing, repeated or out of order; a bad X-Lwota-* header
	codeInvalidImage         = "invalid_image"          // 400: the catalog refused the image or its metadata (firmware.ErrInvalid)
	codeSignatureRequired    = "signature_required"     // 400: no signature, and this server takes signed images only
	codeTruncated            = "truncated"              // 400: the image ended before its declared size
	codeInvalidKey           = "invalid_key"            // 400: no name, or a public key lwota cannot use
	codeImageInUse           = "image_in_use"           // 409: a device update or a campaign uses the image
	codeIdentityTaken        = "identity_taken"         // 409: the PSK identity belongs to another device
	codeKeyInUse             = "key_in_use"             // 409: retiring a cluster key stored credentials are still sealed with
	codeKeyActive            = "key_active"             // 409: retiring the active cluster key, or two rotations at once
	codeActiveJob            = "active_job"             // 409: the device already has a firmware update in progress
	codeJobEnded             = "job_ended"              // 409: cancelling a firmware update that already ended
	codeImageTooLarge        = "image_too_large"        // 413: an image over the configured maximum
	codeRangeNotSatisfiable  = "range_not_satisfiable"  // 416: the Range starts beyond the image's end
	codeBadSignature         = "bad_signature"          // 422: no trusted, unrevoked key verifies the signature
	codeHashMismatch         = "hash_mismatch"          // 422: the image's SHA-256 is not the one the client sent
	codeImageNotFound        = "image_not_found"        // 422: a firmware update names an image that does not exist
	codeStorageUnavailable   = "storage_unavailable"    // 503: the blob store failed; try again
	codeCanceled             = "canceled"               // 499: the client went away (never seen by that client)
	codeUnauthorized         = "unauthorized"           // 401: no bearer token, or an unknown or revoked one
	codeForbidden            = "forbidden"              // 403: the token's role may not call this route
	codeInvalidToken         = "invalid_token"          // 400: a token needs a name and one of the roles
	codeRequestTimeout       = "request_timeout"        // 408: the request body stopped arriving (--http-body-timeout)
	codeInvalidCampaign      = "invalid_campaign"       // 422: the campaign is refused; details name each field
	codeDeviceConflict       = "device_conflict"        // 409: devices are already in another active campaign
	codeInvalidTransition    = "invalid_transition"     // 409: the campaign's state does not allow the action
	codeModelMismatch        = "model_mismatch"         // 422: an update's image is not built for the device (update_rules.go)
	codeAlreadyUpToDate      = "already_up_to_date"     // 409: the device already runs the update's version
	codeDuplicateVersion     = "duplicate_version"      // 409: the image's model already has an image of this version
	codeInvalidWebhook       = "invalid_webhook"        // 400: a webhook needs an http(s) url and known kinds; details name the field
)

// statusClientClosed is nginx's code for a request whose client left; logs only.
const statusClientClosed = 499

// apiError is an error with its HTTP rendering. Handlers return it; writeError writes it.
type apiError struct {
	Status     int
	Code       string
	Message    string
	DeviceCode string    // the device's CoAP code for device_error
	Allow      string    // the Allow header of a 405
	RetryAfter string    // the Retry-After header, seconds
	ExpectedAt time.Time // device_asleep: when the device is due to talk to lwota again
	Err        error     // the cause, for the log line
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *apiError) Unwrap() error { return e.Err }

// errorBody is the one shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string    `json:"code"`
	Message    string    `json:"message"`
	DeviceCode string    `json:"device_code,omitempty"`
	ExpectedAt time.Time `json:"expected_at,omitzero"`
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: fmt.Sprintf(format, args...)}
}

// mapError turns an error from the server core into its HTTP form. subject names what the request
// was about ("device urn:imei:1", "request 42") and starts the message.
func mapError(subject string, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var de *dm.DeviceError
	var mbe *http.MaxBytesError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &de):
		status := http.StatusBadGateway
		switch de.Code {
		case "4.00":
			status = http.StatusBadRequest
		case "4.04":
			status = http.StatusNotFound
		case "4.05":
			status = http.StatusMethodNotAllowed
		}
		msg := subject + " answered " + de.Code
		if de.Msg != "" {
			msg += ": " + de.Msg
		}
		return &apiError{Status: status, Code: codeDeviceError, Message: msg, DeviceCode: de.Code, Err: err}
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), Err: err}
	case errors.As(err, &he):
		return fromHTTPError(he)
	case errors.Is(err, registration.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: subject + " is not registered", Err: err}
	case errors.Is(err, dm.ErrRequestNotFound):
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: subject + " does not exist", Err: err}
	case errors.Is(err, dm.ErrOffline):
		return &apiError{Status: http.StatusConflict, Code: codeDeviceOffline, Message: subject + " is offline", Err: err}
	case errors.Is(err, dm.ErrUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: "lwota is starting or shutting down; try again", Err: err}
	case errors.Is(err, dm.ErrTimeout):
		return &apiError{Status: http.StatusGatewayTimeout, Code: codeDeviceTimeout, Message: subject + " did not answer in time", Err: err}
	case errors.Is(err, dm.ErrQueueFull):
		return &apiError{Status: http.StatusTooManyRequests, Code: codeQueueFull, Message: subject + " has too many queued requests", Err: err}
	case errors.Is(err, dm.ErrInvalid):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Message: trimPkg(err.Error()), Err: err}
	case errors.Is(err, lwm2m.ErrInvalidPath):
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidPath, Message: trimPkg(err.Error()), Err: err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The HTTP server's body timeout: the client stopped sending its request body.
		return &apiError{Status: http.StatusRequestTimeout, Code: codeRequestTimeout, Message: "the request body stalled; send it again", Err: err}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: statusClientClosed, Code: codeCanceled, Message: "client went away", Err: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error", Err: err}
}

// fromHTTPError covers echo's own errors: unknown routes, wrong methods.
func fromHTTPError(he *echo.HTTPError) *apiError {
	code := codeInternal
	switch he.Code {
	case http.StatusNotFound:
		code = codeNotFound
	case http.StatusMethodNotAllowed:
		code = codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		code = codeBodyTooLarge
	case http.StatusUnsupportedMediaType:
		code = codeUnsupportedMediaType
	case http.StatusBadRequest:
		code = codeInvalidRequest
	}
	msg := strings.ToLower(http.StatusText(he.Code))
	if m, ok := he.Message.(string); ok && m != "" {
		msg = strings.ToLower(m)
	}
	return &apiError{Status: he.Code, Code: code, Message: msg, Err: he.Internal}
}

// trimPkg drops the "dm: " style prefix that Go errors carry; API clients do not know our packages.
func trimPkg(s string) string {
	for _, p := range []string{"dm: ", "lwm2m: ", "json: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// writeError is echo's HTTPErrorHandler: every error leaves in the same shape.
func (a *API) writeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := mapError("request", err)
	c.Set(errorCodeKey, ae.Code) // for the audit entry
	if ae.Allow != "" {
		c.Response().Header().Set(echo.HeaderAllow, ae.Allow)
	}
	if ae.RetryAfter != "" {
		c.Response().Header().Set("Retry-After", ae.RetryAfter)
	}
	body := errorBody{Error: errorDetail{Code: ae.Code, Message: ae.Message, DeviceCode: ae.DeviceCode, ExpectedAt: ae.ExpectedAt}}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	_ = c.JSON(ae.Status, body) // the client is gone if this fails; logRequests has the status
}
