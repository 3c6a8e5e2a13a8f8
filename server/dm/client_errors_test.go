package dm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/transport"
)

// TestTransportError: each transport failure reaches callers as the kind they branch on; an answer
// with an unrecognised critical option is the device's error, never a success (RFC 7252 §5.4.1).
func TestTransportError(t *testing.T) {
	c := &Client{}
	req := Request{Op: OpRead, Path: lwm2m.MustParsePath("/3/0")}
	tests := []struct {
		err        error
		want       error
		deviceCode string
	}{
		{err: transport.ErrTimeout, want: ErrTimeout},
		{err: transport.ErrClosed, want: ErrUnavailable},
		{err: fmt.Errorf("tcp: %w", transport.ErrNotConnected), want: ErrAsleep},
		{err: transport.ErrReset, deviceCode: "RST"},
		{err: fmt.Errorf("answer: %w", transport.ErrBadOption), deviceCode: "bad-option"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := c.transportError("ep", req, tt.err)
			if tt.want != nil && !errors.Is(got, tt.want) {
				t.Fatalf("%v is not %v", got, tt.want)
			}
			var de *DeviceError
			if tt.deviceCode != "" && (!errors.As(got, &de) || de.Code != tt.deviceCode) {
				t.Fatalf("%v: want a DeviceError %s", got, tt.deviceCode)
			}
		})
	}
}
