package registration

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the registry's Prometheus series; build them with NewMetrics.
type Metrics struct {
	registers, updates, deregisters, expired prometheus.Counter
	rejected                                 *prometheus.CounterVec
	online                                   prometheus.Gauge
	unreachable                              prometheus.Gauge       // reach.go
	limits                                   *prometheus.CounterVec // by limit (limits.go)
	infoReads                                *prometheus.CounterVec // by result: ok, failed, stale, deferred
	nosecRefused                             *prometheus.CounterVec // by op (nosec.go)
	displaced                                prometheus.Counter     // addrclaim.go
}

// NewMetrics registers the registry's series with reg; a nil reg gives unregistered series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		registers:   prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_registrations_total", Help: "Register operations accepted."}),
		updates:     prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_registration_updates_total", Help: "Update operations accepted."}),
		deregisters: prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_deregistrations_total", Help: "De-register operations accepted."}),
		expired:     prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_registrations_expired_total", Help: "Registrations whose lifetime ran out."}),
		rejected:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_registration_rejected_total", Help: "Registration interface requests refused, by operation and CoAP code."}, []string{"op", "code"}),
		limits:      newLimitCounter(),
		online:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "lwota_registrations_online", Help: "Devices registered and within their lifetime."}),
		unreachable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lwota_registrations_unreachable", Help: "Registered devices whose last request from lwota timed out and that have not been heard from since."}),
		infoReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_device_info_reads_total",
			Help: "Background reads of Object 3 after a Register, by result: ok, failed, stale (the device registered again or left first), deferred (the queue was full: read once it has room), retried (a failed read of a device not in queue mode, tried again after a backoff)."}, []string{"result"}),
		nosecRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_registration_nosec_refused_total",
			Help: "Register, Update and De-register requests over plain CoAP (NoSec) refused because the endpoint has a DTLS credential or a live secured registration, by operation."}, []string{"op"}),
		displaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_registration_addresses_displaced_total",
			Help: "Registrations that lost their address to another device registering or updating from it (a restarted device's old port handed to another device): requests for them wait for their next Register or Update."}),
	}
	if reg != nil {
		reg.MustRegister(m.registers, m.updates, m.deregisters, m.expired, m.rejected, m.online, m.infoReads, m.limits, m.nosecRefused, m.unreachable, m.displaced)
	}
	return m
}

func (m *Metrics) orNop() *Metrics {
	if m == nil {
		return NewMetrics(nil)
	}
	return m
}
