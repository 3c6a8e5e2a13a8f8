//go:build !unix

package lwm2mtest

import (
	"net"

	piondtlsnet "github.com/pion/dtls/v3/pkg/net"
)

// lendingPacketConn wraps the connected socket uc for pion (dtls_lend.go lends datagrams on
// unix).
func lendingPacketConn(uc *net.UDPConn) net.PacketConn { return piondtlsnet.PacketConnFromConn(uc) }
