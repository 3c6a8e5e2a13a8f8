package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

// Exit statuses, one per class of failure, so that a script can tell "no such device" from "the
// server is down" without reading the message. The README lists them, and so does `lwota --help`.
const (
	exitOK       = 0
	exitOther    = 1 // anything else: a failed update with --wait, a campaign that ended aborted, a bad file
	exitUsage    = 2 // bad flags or arguments, an unknown command, or a 400 (the server refused the request's form)
	exitNotFound = 3 // 404: no such device, image, job, campaign, key or token
	exitConflict = 4 // 409, 412, 422: the request is well formed but a rule refuses it (state, version, duplicate)
	exitAuth     = 5 // 401, 403: no token, a revoked token, or a role that may not do this
	exitNetwork  = 6 // the server could not be reached: connection refused, DNS, timeout
	exitServer   = 7 // 5xx: the server failed
)

// exitCodesHelp is the exit status table of `lwota --help`.
const exitCodesHelp = `Exit status:
  0  success
  1  other failure (an update that failed with --wait, a campaign that ended aborted, a bad file)
  2  usage: bad flags or arguments, unknown command; or the server answered 400
  3  not found: the server answered 404
  4  conflict: the server answered 409, 412 or 422 (a rule refuses the request)
  5  auth: the server answered 401 or 403
  6  network: the server could not be reached (connection refused, DNS, timeout)
  7  server: the server answered 5xx
`

// usageError is a command line that cannot run as given: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef makes a usageError.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// asUsage makes err, a flag set's refusal of its command line (a bad value, flags that do not
// go together), a usage error; -h (flag.ErrHelp) stays what it is.
func asUsage(err error) error {
	var ue *usageError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
		return err
	}
	return &usageError{err}
}

// exitCode maps an error to the exit status of its class.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusBadRequest:
			return exitUsage
		case ae.Status == http.StatusNotFound:
			return exitNotFound
		case ae.Status == http.StatusConflict || ae.Status == http.StatusPreconditionFailed || ae.Status == http.StatusUnprocessableEntity:
			return exitConflict
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return exitAuth
		case ae.Status >= 500:
			return exitServer
		}
		return exitOther
	}
	if isNetworkError(err) {
		return exitNetwork
	}
	return exitOther
}

// isNetworkError reports whether err is a failure to reach the server: a refused or reset
// connection, a name that does not resolve, a timeout. Ctrl-C (context.Canceled) is not one.
func isNetworkError(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var netErr net.Error
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout()
}
