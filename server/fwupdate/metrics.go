package fwupdate

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active      prometheus.Gauge
	transitions *prometheus.CounterVec
	duration    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lwota_fwupdate_jobs_active",
			Help: "Firmware update jobs being driven by this process.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_fwupdate_transitions_total",
			Help: "Firmware update job transitions stored, by the state entered.",
		}, []string{"to"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lwota_fwupdate_job_seconds",
			Help:    "Time from a job's creation to its end, by outcome.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 s to ~3 days
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.transitions, m.duration)
	}
	return m
}
