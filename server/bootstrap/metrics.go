package bootstrap

import "github.com/prometheus/client_golang/prometheus"

// metrics of the Bootstrap Server.
type metrics struct {
	sessions *prometheus.CounterVec // by outcome and reason kind
	duration prometheus.Histogram
	active   prometheus.Gauge
	requests *prometheus.CounterVec // requests sent to devices, by operation and answer class
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_bootstrap_sessions_total",
			Help: "Bootstrap sessions ended, by outcome (success, failure) and the step that failed (none on success).",
		}, []string{"outcome", "step"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lwota_bootstrap_session_seconds",
			Help:    "Duration of successful bootstrap sessions, from Bootstrap-Request to the stored result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lwota_bootstrap_sessions_active",
			Help: "Bootstrap sessions in progress.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_bootstrap_requests_total",
			Help: "Requests the Bootstrap Server sent to devices, by operation and answer (2.xx, 4.xx, 5.xx, timeout).",
		}, []string{"op", "answer"}),
	}
	for _, o := range []string{OutcomeSuccess, OutcomeFailure} {
		m.sessions.WithLabelValues(o, "none")
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.duration, m.active, m.requests)
	}
	return m
}
