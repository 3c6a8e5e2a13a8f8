package main

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/lwota/lwota/server/credentials/keyring"
	"github.com/lwota/lwota/server/transport"
)

// checkNodeRelay validates --node-relay-addr and derives the relay key from the cluster key.
// The node id (DTLS.Node.ID) and the other nodes' relay addresses (DTLS.Node.Relays) come from
// the cluster's node table; until they are set, the relay does not listen.
func (c *serveConfig) checkNodeRelay() error {
	if c.Core.NodeRelayAddr == "" {
		return nil
	}
	if !c.Cluster || c.ClusterKey == "" {
		return errors.New("serve: --node-relay-addr needs --cluster and --cluster-key (the relay's key is derived from it)")
	}
	if !c.Core.DTLS.ConnectionID {
		return errors.New("serve: --node-relay-addr needs --dtls-connection-id: the relay routes records by connection id")
	}
	ap, err := netip.ParseAddrPort(c.Core.NodeRelayAddr)
	if err != nil {
		return fmt.Errorf("serve: --node-relay-addr %q: want IP:port: %w", c.Core.NodeRelayAddr, err)
	}
	if ap.Addr().IsUnspecified() || ap.Port() == 0 {
		// It is also the address the other nodes send to (cluster_nodes.forward_addr).
		return fmt.Errorf("serve: --node-relay-addr %s: give the address and port the other nodes reach this node at", ap)
	}
	kek, err := keyring.ParseClusterKey(c.ClusterKey)
	if err != nil {
		return fmt.Errorf("serve: --cluster-key: %w", err)
	}
	if c.Core.DTLS.Node.Key, err = transport.RelayKey(kek); err != nil {
		return fmt.Errorf("serve: relay key: %w", err)
	}
	return nil
}
