package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// routeUnmatched is the route label of requests no route serves (404, and 405 for a method the
// path does not have): the raw path would give every typo and scanner probe a series of its own.
const routeUnmatched = "unmatched"

// requestMetrics counts and times API calls by echo's route template, never the raw path, so a
// million devices still make one series per route.
type requestMetrics struct {
	requests *prometheus.CounterVec   // method, route, status_class
	duration *prometheus.HistogramVec // method, route
}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_api_requests_total",
			Help: "API requests answered, by method, route template and status class (2xx, 4xx, 5xx).",
		}, []string{"method", "route", "status_class"}),
		// Status is left out of the histogram: one set of buckets per route and method is enough
		// for latency, and errors are in the counter.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lwota_api_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by method and route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// measureRequests observes every request once its answer is written. It is a Pre middleware: it
// wraps routing, the Use chain and the error writer (logRequests), so it sees the final status
// of error answers too and c.Path() is the matched route when next returns.
func (a *API) measureRequests(m *requestMetrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err) // not expected (logRequests writes errors), but the status must be the answer's
			}
			method, route := c.Request().Method, c.Path()
			if !a.isRoute(method, route) {
				route, method = routeUnmatched, knownMethod(method)
			}
			m.requests.WithLabelValues(method, route, statusClass(c.Response().Status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// knownMethod bounds the method label of unmatched requests: any token is a valid method.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusClass is "2xx" for 200 to 299 and so on; a status outside 100 to 599 is "other".
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}
