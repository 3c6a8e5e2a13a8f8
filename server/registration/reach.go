package registration

import "time"

// reachability: a device that stops answering lwota's requests is marked unreachable at once,
// not only when its lifetime runs out (which may be a day away). The mark lives in memory, next
// to the registration, and goes at the device's next uplink or answer. It changes nothing that
// is stored: the registration stays live, and requests are still tried.

// MarkUnreachable records that endpoint's device did not answer a request; the first mark
// since it was last heard from sets Registration.UnreachableSince. Unknown endpoints are
// ignored.
func (r *Registry) MarkUnreachable(endpoint string) {
	now := r.now().UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if d := r.byEndpoint[endpoint]; d != nil && d.unreachable.CompareAndSwap(0, now) {
		r.metrics.unreachable.Inc()
	}
}

// MarkReachable clears the mark: the device answered.
func (r *Registry) MarkReachable(endpoint string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.clearUnreachable(endpoint)
}

// clearUnreachable clears endpoint's mark; the caller holds mu (read or write).
func (r *Registry) clearUnreachable(endpoint string) {
	if d := r.byEndpoint[endpoint]; d != nil {
		r.clearDeviceUnreachable(d)
	}
}

// clearDeviceUnreachable clears d's mark: for a caller that holds the record already (Seen, on
// every datagram), so that the endpoint is not looked up again.
func (r *Registry) clearDeviceUnreachable(d *device) {
	if d.unreachable.Load() != 0 && d.unreachable.Swap(0) != 0 {
		r.metrics.unreachable.Dec()
	}
}

// unreachableSince returns when endpoint was marked, or zero; the caller holds mu.
func (r *Registry) unreachableSince(endpoint string) time.Time {
	if d := r.byEndpoint[endpoint]; d != nil {
		if ns := d.unreachable.Load(); ns != 0 {
			return time.Unix(0, ns).UTC()
		}
	}
	return time.Time{}
}
