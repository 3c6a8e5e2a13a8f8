package fwupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/lwota/lwota/server/dm"
	"github.com/lwota/lwota/server/events"
	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// failingDevices is an online DTLS device whose every request fails with err.
type failingDevices struct{ err error }

func (f failingDevices) Device(context.Context, string) (*registration.Registration, error) {
	return &registration.Registration{
		Endpoint: "ep", Lifetime: 3600, RegisteredAt: t0.Add(-time.Minute), LastSeen: t0, Identity: "id-ep",
		Addr: transport.Addr{Network: transport.DTLS, AddrPort: netip.MustParseAddrPort("127.0.0.1:5684")},
	}, nil
}
func (f failingDevices) DoNow(context.Context, string, dm.Request) (*dm.Result, error) {
	return nil, fmt.Errorf("read on ep: %w", f.err)
}
func (f failingDevices) Push(context.Context, string, lwm2m.Path, lwm2m.ContentFormat, io.ReaderAt, int64, transport.UploadOptions) error {
	return f.err
}
func (f failingDevices) Hold(string) func()                                  { return func() {} }
func (f failingDevices) SubscribeN(context.Context, int) <-chan events.Event { return nil }
func (f failingDevices) Local(string) bool                                   { return true }

// transitionLog is a Store that records the transitions saved; nothing else is called here.
type transitionLog struct {
	Store
	saved []Transition
}

func (s *transitionLog) SaveTransition(_ context.Context, _ *Job, tr Transition) error {
	s.saved = append(s.saved, tr)
	return nil
}

func (s *transitionLog) SaveProgress(context.Context, *Job) error { return nil }

// TestNoSessionWaitsForDevice: a request that finds no DTLS session with the device (its
// session was evicted, or it lived on a cluster node that died and the device has not
// handshaken here yet) neither fails the job nor moves it: the step waits for the device to
// talk again, as the device may be finishing the update on its own. Any other error the
// device cannot recover from still fails the job, so the check can tell the two apart.
func TestNoSessionWaitsForDevice(t *testing.T) {
	const poll = 7 * time.Second
	tests := []struct {
		name  string
		state State
		sent  bool
		err   error
		fails bool
	}{
		{"delivering, nothing sent", StateDelivering, false, transport.ErrNoSession, false},
		{"delivering, uri sent", StateDelivering, true, transport.ErrNoSession, false},
		{"updating", StateUpdating, true, transport.ErrNoSession, false},
		{"verifying", StateVerifying, true, transport.ErrNoSession, false},
		{"delivering, broken device", StateDelivering, true, errors.New("codec: garbage"), true},
		{"updating, broken device", StateUpdating, true, errors.New("codec: garbage"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &transitionLog{}
			// The step's deadline is counted on the wall clock: the job entered its state now.
			now := time.Now()
			d := New(Config{PollInterval: poll}, failingDevices{tc.err}, store, nil, nil, nil, nil, func() time.Time { return now })
			d.ctx = context.Background()
			j := jobIn(tc.state, false)
			j.Delivery = ""
			if tc.sent {
				j.Delivery = DeliveryCoAPS
			}
			j.StepAt[tc.state] = now
			r := newRun(d, j)
			r.sent = tc.sent
			wait := r.step(j)
			got := r.current()
			if tc.fails {
				if got.State != StateFailed && !got.Retryable() {
					t.Fatalf("a broken device's job is %s after the step (transitions %+v), want it failed", got.State, store.saved)
				}
				return
			}
			if len(store.saved) != 0 || got.State != tc.state {
				t.Fatalf("job moved to %s with transitions %+v: a device without a DTLS session here must be waited for", got.State, store.saved)
			}
			if wait != poll {
				t.Errorf("the step waits %v, want the poll interval %v (or the device's next Update)", wait, poll)
			}
		})
	}
}
