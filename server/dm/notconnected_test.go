package dm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/lwota/lwota/server/lwm2m"
	"github.com/lwota/lwota/server/registration"
	"github.com/lwota/lwota/server/transport"
)

// goneSender is a stream transport whose connection to the device has just failed: every
// write finds it gone. reachable says what Reachable reports.
type goneSender struct {
	reachable bool
	sent      int
}

func (s *goneSender) Do(context.Context, transport.Addr, *transport.Message) (*transport.Message, error) {
	s.sent++
	return nil, fmt.Errorf("tcp: write: %w", transport.ErrNotConnected)
}

func (s *goneSender) Upload(context.Context, transport.Addr, *transport.Message, io.ReaderAt, int64, transport.UploadOptions) (*transport.Message, error) {
	return nil, transport.ErrNotConnected
}

func (s *goneSender) NewToken() []byte                            { return []byte{1} }
func (s *goneSender) Reachable(transport.Addr) bool               { return s.reachable }
func (d oneDevice) Get(string) (*registration.Registration, bool) { return d.reg, true }

type oneDevice struct{ reg *registration.Registration }

type memQueue struct{ saved []*Pending }

func (q *memQueue) SavePending(_ context.Context, p *Pending) error {
	q.saved = append(q.saved, p)
	return nil
}
func (q *memQueue) PendingFor(context.Context, string) ([]*Pending, error) { return nil, nil }
func (q *memQueue) GetPending(context.Context, string) (*Pending, error) {
	return nil, ErrRequestNotFound
}

// A device registered over TCP whose connection is gone is handled as one asleep: Do queues
// the request (whether the sender knew before sending or found out writing it), DoNow fails
// with ErrAsleep.
func TestNotConnectedQueues(t *testing.T) {
	now := time.Now()
	reg := &registration.Registration{Endpoint: "tcp-1", Version: "1.1", Lifetime: 300, RootPath: "/",
		Addr: transport.Addr{Network: transport.TCP, AddrPort: netip.MustParseAddrPort("127.0.0.1:4000")}, UpdatedAt: now, LastSeen: now}
	read := Request{Op: OpRead, Path: lwm2m.NewPath(3, 0, 0)}
	for _, reachable := range []bool{true, false} {
		t.Run(fmt.Sprintf("reachable=%v", reachable), func(t *testing.T) {
			s := &goneSender{reachable: reachable}
			q := &memQueue{}
			c := New(s, oneDevice{reg}, nil, q, nil, nil, nil, DefaultConfig(), nil, nil, nil)
			res, p, err := c.Do(context.Background(), "tcp-1", read)
			if err != nil || res != nil || p == nil || p.State != PendingQueued || len(q.saved) != 1 {
				t.Fatalf("Do = %+v, %+v, %v; want it queued", res, p, err)
			}
			if _, err := c.DoNow(context.Background(), "tcp-1", read); !errors.Is(err, ErrAsleep) {
				t.Fatalf("DoNow: %v, want ErrAsleep", err)
			}
			if !reachable && s.sent != 0 {
				t.Fatalf("%d requests written to a device known to be unreachable", s.sent)
			}
		})
	}
}
