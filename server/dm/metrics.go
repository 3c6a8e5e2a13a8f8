package dm

import "github.com/prometheus/client_golang/prometheus"

// limitQueuedRequests names Config.MaxQueued in lwota_dm_limit_exceeded_total.
const limitQueuedRequests = "queued_requests"

// Metrics are the client's Prometheus series; build them with NewMetrics.
type Metrics struct {
	queueFull prometheus.Counter // requests refused with ErrQueueFull
}

// NewMetrics registers the client's series with reg; a nil reg gives unregistered series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	limits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lwota_dm_limit_exceeded_total",
		Help: "Device-management requests refused because they went past a limit, by limit.",
	}, []string{"limit"})
	m := &Metrics{queueFull: limits.WithLabelValues(limitQueuedRequests)}
	if reg != nil {
		reg.MustRegister(limits)
	}
	return m
}
