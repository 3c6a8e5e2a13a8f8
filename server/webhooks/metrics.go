package webhooks

import "github.com/prometheus/client_golang/prometheus"

// metrics of the dispatcher; see the README.
type metrics struct {
	attempts *prometheus.CounterVec // by outcome: delivered, failed (will retry), dead
	pending  prometheus.Gauge
	dead     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_webhook_deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered, failed (retried later), dead (given up)."}, []string{"outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lwota_webhook_queue_depth",
			Help: "Webhook deliveries waiting to be delivered (pending), as last counted by the delivering node."}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lwota_webhook_dead_letters",
			Help: "Webhook deliveries given up (dead letters), as last counted by the delivering node."}),
	}
	for _, o := range []string{outcomeDelivered, outcomeFailed, outcomeDead} {
		m.attempts.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.pending, m.dead)
	}
	return m
}

const (
	outcomeDelivered = "delivered"
	outcomeFailed    = "failed"
	outcomeDead      = "dead"
)
