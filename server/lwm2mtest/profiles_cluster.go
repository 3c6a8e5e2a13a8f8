package lwm2mtest

import (
	"context"
	"fmt"
)

// MoveTo makes the device's datagrams reach another server from now on, as a UDP balancer does
// when a node leaves it or the device's NAT mapping changes: a new socket (a new source port)
// towards server, then an Update of the registration it holds (a server that does not know it
// answers 4.04 and the device registers again).
func (d *Device) MoveTo(ctx context.Context, server string) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.server = server
	d.mu.Unlock()
	if err := d.redial(); err != nil {
		return fmt.Errorf("move %s to %s: %w", d.cfg.Endpoint, server, err)
	}
	if err := d.Update(ctx); err != nil {
		return fmt.Errorf("move %s to %s: %w", d.cfg.Endpoint, server, err)
	}
	return nil
}
