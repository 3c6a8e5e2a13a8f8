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
	relays := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lwota_cluster_relay_peers",
		Help: "Other nodes with a forward address (--node-relay-addr) in this node's copy of cluster_nodes, refreshed at every heartbeat: the nodes it can relay DTLS records to."},
		func() float64 { return float64(n.relayPeers()) })
	if reg != nil {
		reg.MustRegister(m.handovers, m.changes, owned, relays)
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

// relayPeers counts the other nodes Lookup knows a forward address of.
func (n *Node) relayPeers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for id, x := range n.nodes {
		if id != n.id && x.ForwardAddr != "" {
			k++
		}
	}
	return k
}
