package send

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	accepted prometheus.Counter
	records  prometheus.Counter
	refused  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_send_total", Help: "Send operations (POST /dp) accepted and stored."}),
		records:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_send_records_total", Help: "Records received in accepted Send operations."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_send_refused_total",
			Help: "Send operations refused, by reason: not_registered, format, bad_payload, too_large, method, not_found, store."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.records, m.refused)
	}
	return m
}
