package fwupdate

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active      prometheus.Gauge
	transitions *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	// compositeReads counts the Read-Composite requests that read State, Update Result and
	// the firmware version at once (composite.go), by outcome: ok, or refused by the device.
	compositeReads *prometheus.CounterVec
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
		compositeReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lwota_fwupdate_composite_reads_total",
			Help: "Read-Composite requests the update driver sent for /3/0/3, /5/0/3 and /5/0/5 in one, by outcome (ok, refused).",
		}, []string{"outcome"}),
	}
	m.compositeReads.WithLabelValues("ok")
	m.compositeReads.WithLabelValues("refused")
	if reg != nil {
		reg.MustRegister(m.active, m.transitions, m.duration, m.compositeReads)
	}
	return m
}
