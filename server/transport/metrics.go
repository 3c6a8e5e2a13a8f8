package transport

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Endpoint's Prometheus collectors. They exist even without a Registerer, so
// the hot path never checks for nil.
type metrics struct {
	received        prometheus.Counter
	sent            prometheus.Counter
	dropped         *prometheus.CounterVec
	dropMalformed   prometheus.Counter
	dropOversize    prometheus.Counter
	dropQueueFull   prometheus.Counter
	duplicates      prometheus.Counter
	retransmissions prometheus.Counter
	staleAnswers    prometheus.Counter
	inlineOverflow  prometheus.Counter // inline-safe requests run beyond the inline limit, the queue being full (dtls_inline.go)
	requests        *prometheus.CounterVec
	requestsByCode  [8]prometheus.Counter // methods 0..7
	handlerSeconds  prometheus.Histogram
	limits          *limitCounters
	block1Dropped   *prometheus.CounterVec // incomplete Block1 transfers dropped: expired, evicted
}

func newMetrics(network Network, reg prometheus.Registerer, dedupEntries, block1Pending func() float64) (*metrics, error) {
	labels := prometheus.Labels{"network": string(network)}
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "lwota", Subsystem: "transport", Name: name, Help: help, ConstLabels: labels}
	}
	m := &metrics{
		received: prometheus.NewCounter(opts("datagrams_received_total", "Datagrams read from the network.")),
		sent:     prometheus.NewCounter(opts("datagrams_sent_total", "Datagrams written to the network, retransmissions included.")),
		dropped: prometheus.NewCounterVec(opts("datagrams_dropped_total",
			"Datagrams dropped before processing, by reason: malformed, oversize, queue_full."), []string{"reason"}),
		duplicates: prometheus.NewCounter(opts("duplicates_total",
			"Duplicate messages answered from the deduplication cache or dropped while the first copy was handled.")),
		retransmissions: prometheus.NewCounter(opts("retransmissions_total", "Confirmable messages retransmitted by lwota.")),
		staleAnswers: prometheus.NewCounter(opts("stale_answers_total",
			"Requests of lwota's answered from the peer's duplicate cache (another request's token under their message id), and sent again under a fresh message id.")),
		inlineOverflow: prometheus.NewCounter(opts("inline_overflow_total",
			"Inline-safe requests that found the inline handlers at their limit and the workers' queue full: over DTLS answered on their session's goroutine, over plain UDP queued in the spill queue (before, dropped as queue_full).")),
		requests: prometheus.NewCounterVec(opts("requests_total", "Requests received, by method."), []string{"method"}),
		handlerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "lwota", Subsystem: "transport", Name: "handler_duration_seconds",
			Help: "Time the Handler took per request.", ConstLabels: labels,
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}),
		limits: newLimitCounters(network),
		block1Dropped: prometheus.NewCounterVec(opts("block1_dropped_total",
			"Incomplete Block1 transfers dropped, by reason: expired (idle for Block1Timeout), evicted (stalled, and its place taken by a new transfer)."),
			[]string{"reason"}),
	}
	m.dropMalformed = m.dropped.WithLabelValues("malformed")
	m.dropOversize = m.dropped.WithLabelValues("oversize")
	m.dropQueueFull = m.dropped.WithLabelValues("queue_full")
	for c := range m.requestsByCode {
		name := Code(c).String()
		if c == 0 {
			name = "other"
		}
		m.requestsByCode[c] = m.requests.WithLabelValues(name)
	}
	if reg == nil {
		return m, nil
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "lwota", Subsystem: "transport", Name: "dedup_entries",
			Help: "Answers kept for duplicate detection.", ConstLabels: labels}, dedupEntries),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "lwota", Subsystem: "transport", Name: "block1_pending",
			Help: "Incoming Block1 transfers being reassembled.", ConstLabels: labels}, block1Pending),
	}
	for _, c := range append([]prometheus.Collector{m.received, m.sent, m.dropped, m.duplicates, m.retransmissions, m.staleAnswers,
		m.inlineOverflow, m.requests, m.handlerSeconds, m.limits.vec, m.block1Dropped}, gauges...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(c Code) {
	if c < 8 {
		m.requestsByCode[c].Inc()
		return
	}
	m.requestsByCode[0].Inc()
}
