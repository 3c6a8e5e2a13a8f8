package cluster

import "github.com/prometheus/client_golang/prometheus"

// metrics are a node's series (README.md, Metrics).
type metrics struct {
	handovers *prometheus.CounterVec
	changes   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lwota_cluster_handover_requests_total",
			Help: "Device requests handed over between cluster nodes: sent to the owner, or served for another node, by result."},
			[]string{"direction", "result"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "lwota_cluster_ownership_changes_total",
			Help: "Devices that moved to this node from another one, or away from it."}),
	}
	owned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lwota_cluster_owned_devices",
		Help: "Devices this node owns: it heard their last Register or Update and their lease has not ended."},
		func() float64 { return float64(n.OwnedCount()) })
	if reg != nil {
		reg.MustRegister(m.handovers, m.changes, owned)
	}
	for _, d := range []string{"sent", "served"} {
		m.handovers.WithLabelValues(d, "ok")
	}
	return m
}

// HandoverCounter is the node's lwota_cluster_handover_requests_total series for direction and
// result, for tests and in-process readers.
func (n *Node) HandoverCounter(direction, result string) (prometheus.Counter, error) {
	return n.m.handovers.GetMetricWithLabelValues(direction, result)
}
