package transport

import (
	"testing"

	"github.com/pion/logging"
)

// TestDTLSLoggerFactoryAllocatesNothing: pion asks the factory for a logger on every handshake;
// the factory lwota passes must answer without allocating (pion/logging's default factory made
// a dozen allocations per call, even with logging disabled).
func TestDTLSLoggerFactoryAllocatesNothing(t *testing.T) {
	var f logging.LoggerFactory = dtlsLoggerFactory()
	allocs := testing.AllocsPerRun(100, func() {
		f.NewLogger("dtls").Tracef("%d", 1)
	})
	if allocs != 0 {
		t.Fatalf("NewLogger and a dropped Tracef: %.0f allocations per handshake, want 0", allocs)
	}
}
