package tcp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/server/transport"
)

type metrics struct {
	accepted     prometheus.Counter
	refused      *prometheus.CounterVec
	received     prometheus.Counter
	sent         prometheus.Counter
	requests     prometheus.Counter
	malformed    prometheus.Counter
	queueFull    prometheus.Counter
	pingTimeouts prometheus.Counter
}

func newMetrics(network transport.Network, reg prometheus.Registerer, open func() float64) (*metrics, error) {
	l := prometheus.Labels{"network": string(network)}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: l})
	}
	m := &metrics{
		accepted: c("lwota_coap_tcp_connections_total", "CoAP over TCP/TLS connections established (CSM exchanged)."),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_coap_tcp_connections_refused_total",
			Help: "CoAP over TCP/TLS connections closed before serving, by reason (handshake, certificate, no-csm, limit).", ConstLabels: l},
			[]string{"reason"}),
		received:     c("lwota_coap_tcp_frames_received_total", "CoAP over TCP/TLS frames received after the CSM."),
		sent:         c("lwota_coap_tcp_frames_sent_total", "CoAP over TCP/TLS frames sent."),
		requests:     c("lwota_coap_tcp_requests_total", "Device requests handed to the handler."),
		malformed:    c("lwota_coap_tcp_malformed_total", "Connections aborted for a malformed or oversize frame or a bad CSM."),
		queueFull:    c("lwota_coap_tcp_queue_full_total", "Requests answered 5.03 because their connection's queue was full."),
		pingTimeouts: c("lwota_coap_tcp_ping_timeouts_total", "Idle connections closed because a Ping went unanswered."),
	}
	for _, r := range []string{"handshake", "certificate", "no-csm", "limit"} {
		m.refused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	openConns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lwota_coap_tcp_connections", Help: "Open CoAP over TCP/TLS connections.", ConstLabels: l}, open)
	for _, col := range []prometheus.Collector{m.accepted, m.refused, m.received, m.sent, m.requests, m.malformed, m.queueFull, m.pingTimeouts, openConns} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
