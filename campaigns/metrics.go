package campaigns

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lwota/lwota/campaigns/plan"
)

// metrics are the leader's view of the campaigns it drives. Series labelled with a campaign id
// live only while the campaign is followed: ids grow without bound over a server's life.
type metrics struct {
	devices *prometheus.GaugeVec // campaign, state: deleted when the campaign is no longer followed
	// starts has no campaign label. A per-campaign counter would either keep a series for every
	// campaign ever run, or lose the starts since the last scrape when its series is deleted at
	// the end (increase() then undercounts). Per-campaign progress is in devices and the API.
	starts prometheus.Counter
	tick   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lwota_campaign_devices", Help: "Devices of each active campaign per state.",
		}, []string{"campaign", "state"}),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lwota_campaign_update_starts_total", Help: "Device updates started by campaigns, all campaigns together.",
		}),
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lwota_campaign_tick_seconds", Help: "Time of one scheduler tick over every active campaign.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.devices, m.starts, m.tick)
	}
	return m
}

func (m *metrics) observe(c *Campaign, waves []plan.Counts, starts int) {
	var all plan.Counts
	for _, w := range waves {
		all.Pending += w.Pending
		all.InProgress += w.InProgress
		all.Succeeded += w.Succeeded
		all.UpToDate += w.UpToDate
		all.Failed += w.Failed
		all.Cancelled += w.Cancelled
	}
	for state, n := range map[MemberState]int{MemberPending: all.Pending, MemberInProgress: all.InProgress,
		MemberSucceeded: all.Succeeded, MemberUpToDate: all.UpToDate, MemberFailed: all.Failed, MemberCancelled: all.Cancelled} {
		m.devices.WithLabelValues(c.ID, string(state)).Set(float64(n))
	}
	m.starts.Add(float64(starts))
}

// forget drops the series of a campaign no longer followed.
func (m *metrics) forget(id string) {
	m.devices.DeletePartialMatch(prometheus.Labels{"campaign": id})
}
