package freeport

import (
	"net"
	"testing"
)

// TestUDPAndTCPAreFreeAndBelowTheRange: the addresses returned are loopback addresses with a
// port from 10000 up, and can be listened on.
func TestUDPAndTCPAreFreeAndBelowTheRange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pick   func() (string, error)
		listen func(string) error
	}{
		{"udp", UDP, func(a string) error {
			pc, err := net.ListenPacket("udp", a)
			if err == nil {
				pc.Close()
			}
			return err
		}},
		{"tcp", TCP, func(a string) error {
			l, err := net.Listen("tcp", a)
			if err == nil {
				l.Close()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := tc.pick()
			if err != nil {
				t.Fatal(err)
			}
			ap, err := net.ResolveUDPAddr("udp", addr)
			if err != nil || !ap.IP.IsLoopback() || ap.Port < 10000 {
				t.Fatalf("address %q (%v)", addr, err)
			}
			if err := tc.listen(addr); err != nil {
				t.Fatalf("listen on %s: %v", addr, err)
			}
		})
	}
}
