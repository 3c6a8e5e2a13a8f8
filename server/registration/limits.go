package registration

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The limits the registry enforces on Register and Update, by their name in the limit label of
// lwota_registration_limit_exceeded_total.
const (
	limitEndpointName = "endpoint_name"            // MaxEndpointLen and the characters a name may hold: 4.00
	limitPayload      = "registration_payload"     // MaxPayload: 4.13
	limitObjects      = "objects_per_registration" // MaxObjects: 4.13
)

// limitError is a refusal because a request went past one of the configured limits. It reads
// and unwraps as the error it carries, so the CoAP code still follows from that error.
type limitError struct {
	limit string
	err   error
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// overLimit marks err as caused by limit.
func overLimit(limit string, err error) error { return &limitError{limit: limit, err: err} }

func newLimitCounter() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lwota_registration_limit_exceeded_total",
		Help: "Register and Update requests refused because they went past a limit, by limit.",
	}, []string{"limit"})
	for _, l := range []string{limitEndpointName, limitPayload, limitObjects} {
		v.WithLabelValues(l) // every series exists from the start, at 0
	}
	return v
}

// countLimit counts err when a limit caused it.
func (m *Metrics) countLimit(err error) {
	var le *limitError
	if errors.As(err, &le) {
		m.limits.WithLabelValues(le.limit).Inc()
	}
}
