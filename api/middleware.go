package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// HeaderRequestID carries the request id: taken from the client when it sent a sane one, made up otherwise,
// and always echoed in the response so a client can quote it when reporting a problem.
const HeaderRequestID = "X-Request-ID"

// requestID makes sure every request and response has an id.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(HeaderRequestID, id)
		return next(c)
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == ':'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// logRequests writes the error response of a failed handler, then one log line per request:
// debug for answers below 500, info with the error for the rest.
func (a *API) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // writes the error body through writeError
		}
		res := c.Response()
		level := slog.LevelDebug
		attrs := []slog.Attr{
			slog.String("method", c.Request().Method),
			slog.String("uri", c.Request().URL.RequestURI()),
			slog.String("route", c.Path()),
			slog.Int("status", res.Status),
			slog.Int64("bytes", res.Size),
			slog.Duration("duration", time.Since(start)),
			slog.String("request_id", res.Header().Get(HeaderRequestID)),
		}
		if err != nil && res.Status >= 500 && res.Status != statusClientClosed {
			level = slog.LevelInfo
			attrs = append(attrs, slog.String("err", err.Error()))
		}
		a.logger.LogAttrs(c.Request().Context(), level, "http request", attrs...)
		return nil
	}
}

// panicError is a recovered panic; its text carries the stack for the log line.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", p.value, p.stack) }

// recoverPanics turns a panicking handler into a 500 internal answer instead of a dropped connection.
// http.ErrAbortHandler keeps its meaning and is re-raised.
func recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = &panicError{value: r, stack: debug.Stack()}
			}
		}()
		return next(c)
	}
}

// limitBody refuses bodies over Config.MaxBodyBytes: at once when Content-Length says so, and while
// reading otherwise (readBody turns the *http.MaxBytesError into 413 body_too_large).
func (a *API) limitBody(next echo.HandlerFunc, limit int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > limit {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
				Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
		}
		if r.Body != nil && r.Body != http.NoBody {
			// The underlying writer, so net/http learns of the overflow and closes the connection after answering.
			r.Body = http.MaxBytesReader(c.Response().Writer, r.Body, limit)
		}
		return next(c)
	}
}

// The limits on what API clients send, by their name in the limit label of
// lwota_api_limit_exceeded_total, and the error code of the answer that refuses them.
var limitCodes = map[string]string{
	codeBodyTooLarge:   "json_body",     // Config.MaxBodyBytes: 413 body_too_large
	codeImageTooLarge:  "upload_size",   // the image size limit (WithImages): 413 image_too_large
	codeTooManyStreams: "event_streams", // Config.MaxStreams and MaxStreamsPerToken: 429 too_many_streams
}

// WithMetrics counts requests refused by a limit in lwota_api_limit_exceeded_total{limit}, and
// every request in lwota_api_requests_total and lwota_api_request_duration_seconds (metrics.go),
// registered with reg. Call it once, before serving.
func (a *API) WithMetrics(reg prometheus.Registerer) *API {
	a.echo.Pre(a.measureRequests(newRequestMetrics(reg)))
	a.limits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lwota_api_limit_exceeded_total",
		Help: "API requests refused because they went past a limit, by limit.",
	}, []string{"limit"})
	for _, l := range limitCodes {
		a.limits.WithLabelValues(l) // every series exists from the start, at 0
	}
	a.openGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lwota_api_event_streams",
		Help: "Event streams (GET /api/v1/events) open now.",
	})
	if reg != nil {
		reg.MustRegister(a.limits, a.openGauge)
	}
	return a
}

// countLimits counts the requests whose error answer is a limit's. It sits inside logRequests,
// which writes the answer, so it sees the handler's error as the writer will map it.
func (a *API) countLimits(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err != nil && a.limits != nil {
			if l, ok := limitCodes[mapError("request", err).Code]; ok {
				a.limits.WithLabelValues(l).Inc()
			}
		}
		return err
	}
}
