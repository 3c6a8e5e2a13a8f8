package registration

import "github.com/lwota/lwota/server/transport"

// Address claims. A device that restarts talks from a new socket, and its registration names
// its old address until its next Register or Update. The kernel hands freed ports out again,
// so another device's new socket may get that address and register from it: from then on,
// requests for the first device (a Read, a Package URI, a Block1 push, an Execute) would reach
// the second, and its answers would be taken for the first device's. Over NoSec nothing else
// tells the two apart. So an address belongs to the registration that last told lwota about
// it (a Register or an Update from it); any other registration that names it loses it, and is
// handled as away (dm.ErrAsleep: requests wait) until its device talks again from wherever it
// is now. Displacement lives in memory only: the stored row keeps the old address, and a
// restart that loads two rows naming one address gives it to the newer (UpdatedAt).

// claimAddr makes d the holder of addr in byAddr. A different device that held it loses it
// (displace) when its registration is not newer than d's; if it is newer (only when loading
// stored rows), d is the one displaced and the holder stays. The caller holds mu; d.reg is
// d's current snapshot, with Addr == addr.
func (r *Registry) claimAddr(addr transport.Addr, d *device) {
	cur, ok := r.byAddr.get(addr)
	if ok && cur != d {
		if cur.reg.UpdatedAt.After(d.reg.UpdatedAt) {
			r.displace(d)
			return
		}
		r.displace(cur)
	}
	if !ok || cur != d {
		r.byAddr.set(addr, d)
	}
}

// displace takes d's address from its registration: a new snapshot whose Addr keeps only the
// network (so the device is still known to be a CoAP, CoAPS or TCP device). The caller holds mu.
func (r *Registry) displace(d *device) {
	cp := *d.reg
	r.log.Info("registration lost its address to another device", "endpoint", cp.Endpoint, "addr", cp.Addr.String())
	cp.Addr = transport.Addr{Network: cp.Addr.Network}
	d.setReg(&cp)
	r.metrics.displaced.Inc()
}

// HasAddr reports whether reg names the address its device was last heard from. A
// registration without one lost it to another device that registered from it (addrclaim.go):
// its device cannot be reached until its next Register or Update.
func (reg *Registration) HasAddr() bool { return reg.Addr.AddrPort.IsValid() }
